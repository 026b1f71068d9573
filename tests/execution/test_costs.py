"""The cost model: no cell trained to price one, calibrated once per device, kept, sharpened by finished cells."""

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

import sharens.data
from benchmarks import get_table
from sharens import provenance
from sharens.cli import main
from sharens.data import cache_dir, files, shapes
from sharens.execution import costs
from sharens.execution.runner import run_table
from sharens.suite.plan import plan

CPU = torch.device("cpu")


def _never(what):
    def fail(*args, **kwargs):
        raise AssertionError(f"{what} again")
    return fail


def test_the_cost_model_calibrates_each_device_and_counts_each_model_once_and_keeps_them(data_root, tmp_path,
                                                                                        monkeypatch):
    table = get_table("table5_semg")
    run = run_table(table, "smoke", out=tmp_path, data_root=data_root, execute=False, estimate=True,
                    estimate_plan=True)
    assert run.estimated_seconds > 0 and run.bound_seconds == run.estimated_seconds  # nothing finished yet
    assert run.plan_bound_seconds == run.bound_seconds  # nothing stored: the whole plan is still to run
    assert "thread" in run.device_name and (cache_dir() / "costs.json").exists()
    monkeypatch.setattr(costs, "_calibrate_network", _never("the device was calibrated"))
    monkeypatch.setattr(costs, "_calibrate_classic", _never("an estimator was calibrated"))
    monkeypatch.setattr(costs, "flops_per_sample", _never("a model's FLOPs were counted"))
    again = run_table(table, "smoke", out=tmp_path, data_root=data_root, execute=False, estimate=True)
    assert again.estimated_seconds == run.estimated_seconds
    one_row = run_table(table, "smoke", out=tmp_path, data_root=data_root, execute=False, estimate=True,
                        estimate_plan=True, rows=["DNN"])
    assert one_row.plan_bound_seconds == run.plan_bound_seconds > one_row.bound_seconds > 0


def test_a_plan_trains_nothing_and_reads_no_data_sets_arrays(data_root, tmp_path, monkeypatch):
    """A dry run prices cells from FLOPs and the data's shape: no training step, no array loaded."""
    monkeypatch.setenv("SHARENS_CACHE", str(tmp_path / "empty cache"))  # a fresh machine
    monkeypatch.setattr(costs, "train", _never("a model was trained"))
    monkeypatch.setattr(sharens.data, "load_dataset", _never("a data set was loaded"))
    calibrated = {}
    monkeypatch.setattr(costs, "_calibrate_network", lambda device, threads: calibrated.setdefault("n", (0.01, 1e9)))
    run = run_table(get_table("table3_cifar10"), "smoke", out=tmp_path, data_root=data_root, execute=False,
                    estimate=True)
    assert run.estimated_seconds > 0 and calibrated


def test_a_plan_whose_cells_are_all_stored_prices_nothing(data_root, tmp_path, monkeypatch):
    """A dry run at the committed results calibrates nothing: only cells still to run are priced."""
    for name in ("table5_semg.json", "table5_semg.outcomes.npz"):
        shutil.copy(Path(__file__).resolve().parents[2] / "results" / "smoke" / name, tmp_path / name)
    monkeypatch.setattr(costs, "_calibrate_network", _never("the device was calibrated"))
    monkeypatch.setattr(costs, "_calibrate_classic", _never("an estimator was calibrated"))
    run = run_table(get_table("table5_semg"), "smoke", out=tmp_path, data_root=data_root, execute=False,
                    estimate=True)
    assert len(run.records) == run.planned and run.bound_seconds == run.estimated_seconds == 0


def _semg_spec(members: int = 1):
    table = get_table("table5_semg")
    spec = next(s for s in plan(table, table.profile("smoke"), 1, ["tuned"], ["semg"])
                if s.network and s.network.members == 1)
    return dataclasses.replace(spec, network=dataclasses.replace(spec.network, members=members))


def test_a_cells_estimate_grows_with_its_epochs_members_and_flops(data_root, tmp_path):
    spec = _semg_spec()
    shape = shapes.data_shape("semg", data_root)
    model = costs.CostModel(CPU, 1, tmp_path / "costs.json")
    one = model.seconds(spec, shape)
    assert model.seconds(spec, shape, epochs=2 * spec.network.epochs) > 1.5 * one
    assert model.seconds(_semg_spec(members=2), shape) == pytest.approx(2 * one)
    wider = dataclasses.replace(spec, network=dataclasses.replace(
        spec.network, options={**spec.network.options, "first_width": 4 * spec.network.options["first_width"]}))
    assert model.seconds(wider, shape) > one


def test_finished_cells_on_this_device_set_their_rows_rate(data_root, tmp_path):
    """The estimate sharpens as cells land: a row's measured rate replaces the FLOP-based one, on this device
    only."""
    spec, shape = _semg_spec(), shapes.data_shape("semg", data_root)
    here = provenance.device_name(CPU, 1)

    def finished(device, rate):
        return {"spec": spec.as_dict() | {"seed": 7}, "train_samples_per_s": rate, "provenance": {"device": device}}

    priced = costs.CostModel(CPU, 1, tmp_path / "costs.json")
    alone = priced.seconds(spec, shape)
    priced.save()  # the others read this calibration
    slow = costs.CostModel(CPU, 1, tmp_path / "costs.json", finished=[finished(here, 10.0), finished(here, 30.0)])
    elsewhere = costs.CostModel(CPU, 1, tmp_path / "costs.json", finished=[finished("another CPU", 10.0)])
    rows = shape.sliced(spec.train_subset, spec.test_subset)
    held = round(rows.n_train * spec.network.holdout)
    work = spec.network.epochs * (rows.n_train - held + costs.EVAL_COST * held) + costs.EVAL_COST * rows.n_test
    assert slow.seconds(spec, shape) == pytest.approx(work / 20.0)  # the median of the row's finished cells
    assert elsewhere.seconds(spec, shape) == alone != slow.seconds(spec, shape)


def test_a_plan_says_what_a_run_would_download_and_how_large(data_root, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(data_root / "uci", root / "uci")
    assert main(["reproduce", "--dry-run", "--table", "table7_uci", "--table", "table3_cifar10", "--profile",
                 "smoke", "--data-root", str(root), "--out", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "would download" not in lines[0]  # UCI's files are here
    assert "would download cifar10: cifar-10-python.tar.gz (170.5 MB)" in lines[1]


def test_each_official_files_size_is_the_verified_files(data_root):
    """The sizes a plan quotes for a download are the files' (those the data root holds, verified)."""
    present = [f for f in files.MANIFEST.values() if (data_root / f.relpath).is_file()]
    assert len(present) >= 10
    for f in present:
        assert (data_root / f.relpath).stat().st_size == f.size, f.relpath


@pytest.mark.slow
def test_the_packaged_shapes_are_those_of_the_data_sets_loaded(data_root):
    """`shapes.json` (what a plan reads instead of the data) matches every data set here, key and shape."""
    packaged = shapes.packaged()
    for name in sharens.data.DATASETS:
        key = sharens.data.cache_key(sharens.data.identify(name, data_root))
        loaded = shapes.DataShape.of(sharens.data.load_dataset(name, data_root)).to_json(key)
        assert packaged[name] == loaded, f"rewrite it: python -m sharens.data.shapes ({name} differs)"


def test_expected_epochs_come_from_finished_cells_under_a_stopping_rule():
    def record(pair, ran, cap, patience=10):
        return {"dataset": "d", "pair": pair, "epoch_loss": [1.0] * ran,
                "spec": {"network": {"epochs": cap, "patience": patience}}}

    used = costs.epochs_used([record("A", 10, 100), record("A", 30, 100), record("A", 20, 100),
                              record("B", 5, 5, patience=None), {"dataset": "d", "pair": None, "spec": {}}])
    assert used == {("d", "A"): 0.2}  # the median share; fixed-epoch and classic cells say nothing


def test_reproduce_prints_its_plan_and_estimate_before_any_work(data_root, tmp_path, capsys):
    args = ["reproduce", "--table", "table5_semg", "--profile", "smoke", "--seeds", "1", "--data-root",
            str(data_root), "--out", str(tmp_path), "--rows", "SVM (rbf)"]
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "table5_semg at smoke: 50 cells planned, 0 stored, 1 to run; estimated" in out and "thread" in out
    assert main(args) == 0
    assert "50 cells planned, 0 stored, 1 to run; estimated" in capsys.readouterr().out  # printed before the run


@pytest.mark.slow
def test_auto_runs_the_largest_profile_a_cpu_can_finish_and_says_what_it_left(data_root, tmp_path, capsys,
                                                                               monkeypatch):
    args = ["reproduce", "--table", "table5_semg", "--data-root", str(data_root), "--out", str(tmp_path),
            "--dry-run", "--device", "cpu"]
    monkeypatch.setattr(costs, "CPU_BUDGET_S", 1e9)
    assert main(args) == 0
    assert "table5_semg at full:" in capsys.readouterr().out
    monkeypatch.setattr(costs, "CPU_BUDGET_S", 0)  # nothing fits: the smallest profile, and the reasons
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "`full` would take about" in out and "`quick` would take about" in out and "left for a GPU" in out
    assert "table5_semg at smoke:" in out


def test_list_gives_each_profiles_cost_from_the_cost_model(data_root, capsys, monkeypatch):
    monkeypatch.setattr(costs.CostModel, "seconds", lambda self, spec, shape, epochs=None: 60.0)
    assert main(["list", "--table", "table5_semg", "--costs", "--device", "cpu", "--data-root", str(data_root)]) == 0
    out = capsys.readouterr().out
    assert out.count("    cost: at most") == 3  # smoke, quick, full
    assert "at most 2.1 h for its 125 cells on" in out  # full: 125 cells of a minute each
