"""The image benchmarks: uint8 inputs centred inside the model, per-pair presets, sweeps, gradient probes,
and a smoke run of each table on the real MNIST / CIFAR-10 files."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from benchmarks import figure2_mnist, get_table, resnet_cifar10
from sharens.data import Dataset
from sharens.execution.cell import prepare, run_cell
from sharens.model.backbones import CenteredImages, build_backbone
from sharens.report import markdown as report
from sharens.suite.plan import plan
from sharens.suite.table import Profile
from sharens.train.augment import get_augmentation

IMAGE_TABLES = ("figure2_mnist", "resnet_cifar10", "table3_cifar10")


def _images(n_train=64, n_test=32, shape=(1, 8, 8), seed=0) -> Dataset:
    """Synthetic uint8 images whose class is set by the brightness of the top half (learnable in a few steps)."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = rng.integers(0, 2, n)
        x = rng.integers(0, 120, (n, *shape)).astype(np.uint8)
        x[y == 1, :, : shape[1] // 2] += 120
        return x, y.astype(np.int64)

    (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
    return Dataset("toy", x_train, y_train, x_test, y_test, ("dark", "bright"), {})


def _toy_table(**changes):
    """Figure 2's table cut down to a depth-2 tanh CNN on 8x8 images, one seed, two epochs."""
    profile = Profile("smoke", epochs=2, seeds=1, ensemble_size=1, forest_trees=5)
    return dataclasses.replace(figure2_mnist.TABLE, pairs=(figure2_mnist.tanh_cnn(2),),
                               profiles={"smoke": profile}, batch_size=16, **changes)


def test_centered_images_scale_and_centre_inside_the_model():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (50, 3, 4, 4), dtype=torch.uint8)
    inner = build_backbone("convnet", (3, 4, 4), layers=((4, 1), (4, 2)))
    wrapped = CenteredImages.around(inner, x, chunk=7)  # chunks that do not divide the rows
    expected_mean = x.double().mean(0) / 255
    assert torch.allclose(wrapped.pixel_mean.double(), expected_mean, atol=1e-6)
    taps = wrapped(x[:5])
    direct = inner(x[:5].float() / 255 - wrapped.pixel_mean)
    assert all(torch.equal(taps[k], direct[k]) for k in taps)
    assert wrapped.tap_features == inner.tap_features
    assert sum(p.numel() for p in wrapped.parameters()) == sum(p.numel() for p in inner.parameters())


def test_profiles_can_run_some_pairs_and_must_name_real_ones():
    table = get_table("resnet_cifar10")
    cells = plan(table, table.profile("quick"), 1, ["he2016"], ["cifar10"])
    assert {c.row.pair for c in cells} == {"plain-20", "plain-56", "ResNet-20", "ResNet-56"}
    assert len(plan(table, table.profile("full"), 1, ["he2016"], ["cifar10"])) == 2 * len(table.pairs)
    bad = dataclasses.replace(table.profile("quick"), pairs=("ResNet-1202",))
    with pytest.raises(ValueError, match="unknown pairs"):
        dataclasses.replace(table, profiles={"quick": bad})


def test_resnet_110_alone_warms_up_and_the_others_follow_he_et_al():
    table = resnet_cifar10.TABLE
    configs = {c.row.pair: c.network.optimizer for c in plan(table, table.profile("full"), 1, ["he2016"],
                                                              ["cifar10"])}
    assert configs["ResNet-110"]["warmup_steps"] == configs["plain-110"]["warmup_steps"] == 400
    assert "warmup_steps" not in configs["ResNet-56"] and configs["ResNet-56"]["milestones"] == (0.5, 0.75)
    assert configs["ResNet-56"]["optimizer"] == "sgd" and configs["ResNet-56"]["weight_decay"] == 1e-4
    augmented = plan(table, table.profile("full"), 1, ["he2016"], ["cifar10"])[0].network
    assert augmented.augment == "crop_flip"


def test_unknown_augmentation_is_a_clear_error():
    assert get_augmentation(None) is None
    with pytest.raises(ValueError, match="unknown augmentation 'rotate'"):
        get_augmentation("rotate")


def test_gradient_probe_does_not_change_the_result():
    data = _images()
    cpu = torch.device("cpu")
    records = {}
    for probe in (False, True):
        table = _toy_table(probe_gradients=probe)
        prepared = prepare(data, None, None, cpu)
        cell = next(c for c in plan(table, table.profile("smoke"), 1, ["tuned"], ["toy"]) if c.row.variant == "se")
        records[probe], _ = run_cell(cell, prepared, cpu)
    plain, probed = records[False], records[True]
    assert plain["accuracy"] == probed["accuracy"] and plain["head_accuracies"] == probed["head_accuracies"]
    norms = probed["first_layer_gradient_norm"]
    assert set(norms) == {"init", "trained", "head_weight"} and all(v > 0 for v in norms.values())
    assert "first_layer_gradient_norm" not in plain


def test_a_spec_runs_only_on_the_data_slice_it_names():
    table = _toy_table()
    cell = plan(table, table.profile("smoke"), 1, ["tuned"], ["toy"])[0]
    with pytest.raises(ValueError, match=r"wants toy cut to \(None, None\), but was given toy cut to \(32, None\)"):
        run_cell(cell, prepare(_images(), 32, None, torch.device("cpu")), torch.device("cpu"))


def test_classic_models_read_pixels_scaled_to_unit_range():
    from sharens.suite.table import Classic

    table = dataclasses.replace(_toy_table(), classic=(Classic("Logistic Regression", "logistic_regression"),))
    prepared = prepare(_images(), None, None, torch.device("cpu"))
    cell = next(c for c in plan(table, table.profile("smoke"), 1, ["tuned"], ["toy"]) if c.row.variant == "classic")
    record, outcomes = run_cell(cell, prepared, torch.device("cpu"))
    assert record["accuracy"] > 80 and set(outcomes) == {"y", "predicted"}


def test_sweep_report_pivots_by_depth_and_measures_degradation(tmp_path):
    """Synthetic cells: the plain line loses 20 points from depth 2 to 4, the SE line keeps its accuracy."""
    table = dataclasses.replace(figure2_mnist.TABLE, pairs=tuple(figure2_mnist.tanh_cnn(d) for d in (2, 4)),
                                profiles={"full": Profile("full", epochs=1, seeds=3, ensemble_size=1,
                                                          forest_trees=1)})

    def cell(model, kind, seed, accuracy, norm):
        return {"table": table.id, "dataset": "mnist", "model": model, "kind": kind, "preset": "paper",
                "seed": seed, "profile": "full", "n_train": 60000, "n_test": 10000, "data": {},
                "config": {"preset": table.preset("paper").config()}, "status": "ok", "accuracy": accuracy,
                "train_seconds": 1.0, "first_layer_gradient_norm": {"init": norm, "trained": norm},
                "provenance": {"wall_seconds": 1.0, "device": "cpu", "git_revision": "x"}}

    records = []
    for seed in (0, 1, 2):
        for depth, plain in ((2, 90.0), (4, 70.0)):
            records.append(cell(f"tanh CNN-{depth}", "baseline", seed, plain + seed, 0.1 / depth))
            records.append(cell(f"tanh CNN-{depth}+SE", "se", seed, 95.0 + seed, 0.1))
    md_path, json_path = report.write(table, "full", records, tmp_path)
    doc = json.loads(json_path.read_text())
    plain4 = next(r for r in doc["rows"] if r["model"] == "tanh CNN-4")
    assert plain4["sweep"] == {"family": "tanh CNN", "depth": 4, "se": False, "variant": "baseline"}
    assert plain4["first_layer_gradient_norm"]["init"]["mean"] == pytest.approx(0.025)
    markdown = md_path.read_text()
    assert "## Accuracy by depth" in markdown and "-20.00 [-20.00, -20.00] (2 → 4)" in markdown
    assert "+0.00 [+0.00, +0.00] (2 → 4)" in markdown and "## Gradient reaching the first layer" in markdown
    assert (tmp_path / "figure2_mnist_accuracy_vs_depth.png").read_bytes().startswith(b"\x89PNG")
    assert "](figure2_mnist_gradient_vs_depth.png)" in markdown
    # these records are in the schema before per-row outcomes: still readable, and the report says what they lack
    assert "**Older cells:** 12 finished cells" in markdown and plain4["variant"] == "baseline"


@pytest.fixture(scope="module")
def image_smoke(smoke_run):
    return smoke_run(IMAGE_TABLES)


@pytest.mark.parametrize("table_id", IMAGE_TABLES)
def test_image_smoke_run_on_the_real_files(image_smoke, table_id):
    table = get_table(table_id)
    doc = json.loads((image_smoke / f"{table_id}.json").read_text())
    markdown = (image_smoke / f"{table_id}.md").read_text()
    run_rows = [r for r in doc["rows"] if r["variant"] != "cited"]
    smoke = table.profile("smoke")
    assert {r["model"] for r in run_rows if r["variant"] == "baseline"} == set(
        smoke.pairs or [p.name for p in table.pairs])
    for row in run_rows:
        assert row["status"] == "ok" and row["accuracy"]["n"] == smoke.seeds and 0 <= row["accuracy"]["mean"] <= 100
    assert all(r["verdict"] in (None, "not comparable") for r in run_rows)
    if any(p.sweep for p in table.pairs):
        assert "## Accuracy by depth" in markdown
        assert (image_smoke / f"{table_id}_accuracy_vs_depth.png").is_file()
    if table.probe_gradients:
        assert all(c["first_layer_gradient_norm"]["init"] > 0 for c in doc["cells"])
    if table.augment:
        assert all(c["spec"]["network"]["augment"] == table.augment for c in doc["cells"] if c["variant"] != "classic")


INPUT_SHAPES = {"cifar10": (3, 32, 32), "mnist": (1, 28, 28)}
CPU = torch.device("cpu")


@pytest.mark.slow
@pytest.mark.parametrize("table_id", IMAGE_TABLES)
def test_every_full_profile_model_builds_and_trains_two_steps(table_id):
    """`full` runs only on a GPU, and smoke/quick train only some of a sweep's depths: run every network cell
    of `full` (ResNet-110's warm-up, the 20-layer tanh nets, the independent ensembles) through the runner for
    two steps (the second loss sees the first update) on random images of the real shape, so a config no CPU
    profile touches cannot break it."""
    table = get_table(table_id)
    (dataset,) = table.datasets
    full = table.profile("full")
    assert full.pairs is None  # full trains every pair
    two_steps = dataclasses.replace(full, epochs=2)  # 4 images: one batch per epoch
    data = prepare(dataclasses.replace(_images(4, 4, INPUT_SHAPES[dataset]), name=dataset), None, None, CPU)
    cells = [c for c in plan(table, two_steps, 1, list(table.presets), [dataset]) if c.row.variant != "classic"]
    assert {c.row.pair for c in cells} == {p.name for p in table.pairs}
    for cell in cells:
        record, _ = run_cell(cell, data, CPU)
        assert record["status"] == "ok" and record["steps"] == 2, (cell.row.label, cell.preset)
