"""Batched ensemble members (`sharens.train.members`): member k of one vmap-ed run is a separate run of its seed."""

import numpy as np
import pytest
import torch

from benchmarks import get_table
from sharens.execution.cell import holdout_split, seed_group
from sharens.execution.executors import cell_groups
from sharens.execution.runner import run_table
from sharens.model.backbones import build_backbone
from sharens.model.ensemble import SharingEnsemble
from sharens.suite.plan import plan
from sharens.train.loop import predict_logits, train
from sharens.train.members import train_members
from sharens.train.presets import PRESETS
from sharens.train.speed import Speed

SEEDS = [3, 1003, 2003]
# A linear layer's bias that feeds a batch norm has zero gradient in exact arithmetic (the norm subtracts the
# batch mean), so Adam scales its rounding noise up to steps of size lr; it and the running mean that follows
# it wander apart in any two runs that round differently (by ~1e-3 in eval-mode logits).
BIAS_BEFORE_BATCH_NORM = {f"backbone.layers.{i}.{part}" for i in range(4) for part in ("0.bias", "1.running_mean")}


# how far the class probabilities of a batched seed's cell and its cell alone may part (float16, rounding)
PROBABILITY_TOLERANCE = 1e-2


def _member(seed: int, backbone: str = "mlp") -> SharingEnsemble:
    torch.manual_seed(seed)
    options = {"widths": (48, 32)} if backbone == "mlp" else {"first_width": 48, "depth": 4}
    return SharingEnsemble.baseline(build_backbone(backbone, 12, **options), 3)


def _task(n: int = 600):
    """Three classes with 30% of the labels redrawn: the members overfit, and stop, at different epochs."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 12, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x, torch.where(torch.rand(n, generator=g) < 0.3, torch.randint(0, 3, (n,), generator=g), y)


@pytest.mark.parametrize("rule", [{"patience": 2, "stop_on": "heldout_loss"},
                                  {"patience": 1, "stop_on": "train_loss"}, {}])
@pytest.mark.slow
def test_member_k_of_a_batched_run_equals_a_separate_run_of_its_seed(rule):
    """Own initialisation, rows (each seed's own hold-out split, as a cell group's seeds have), data order and
    stopping rule: weights, curves, kept epoch and test logits match a plain `train` of each seed on its rows
    to float tolerance (batched kernels sum in another order)."""
    x, y = _task()
    splits = [holdout_split(len(x), 1 / 6, seed) for seed in SEEDS]
    watch = rule.get("stop_on") == "heldout_loss"
    options = dict(preset=PRESETS["tuned"], epochs=20, batch_size=50, **rule)
    alone = []
    for seed, (fit, held) in zip(SEEDS, splits, strict=True):
        model = _member(seed)
        heldout = (x[held], y[held]) if watch else None
        alone.append((model, train(model, x[fit], y[fit], seed=seed, heldout=heldout, **options)))
    together = [_member(seed) for seed in SEEDS]
    results = train_members(together, x, y, seeds=SEEDS, rows=torch.stack([fit for fit, _ in splits]),
                            heldout_rows=torch.stack([held for _, held in splits]) if watch else None, **options)

    stopped_at = {len(result.epoch_loss) for _, result in alone}
    assert not rule or len(stopped_at) > 1, "the members should stop at different epochs for this test to bite"
    for (model, expected), batched, result in zip(alone, together, results, strict=True):
        assert (result.best_epoch, result.stopped, result.steps) == (expected.best_epoch, expected.stopped,
                                                                      expected.steps)
        assert result.epoch_loss == pytest.approx(expected.epoch_loss, rel=1e-5)
        assert result.epoch_train_accuracy == pytest.approx(expected.epoch_train_accuracy, abs=1e-6)
        assert result.heldout_loss == pytest.approx(expected.heldout_loss, rel=1e-5)
        for (name, a), b in zip(model.state_dict().items(), batched.state_dict().values(), strict=True):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=5e-5, msg=lambda m, name=name: f"{name}: {m}")
        torch.testing.assert_close(predict_logits(batched, x), predict_logits(model, x), rtol=1e-4, atol=5e-5)


@pytest.mark.slow
def test_members_keep_their_own_batch_norm_statistics():
    """With batch norm, every weight and running variance matches a separate run of the member's seed, and the
    members' running statistics differ from one another (they are not shared)."""
    x, y = _task()
    options = dict(preset=PRESETS["tuned"], epochs=4, batch_size=50)
    alone = [_member(seed, "pyramid_dnn") for seed in SEEDS]
    for model, seed in zip(alone, SEEDS, strict=True):
        train(model, x, y, seed=seed, **options)
    together = [_member(seed, "pyramid_dnn") for seed in SEEDS]
    train_members(together, x, y, seeds=SEEDS, **options)
    for model, batched in zip(alone, together, strict=True):
        for (name, a), b in zip(model.state_dict().items(), batched.state_dict().values(), strict=True):
            if name not in BIAS_BEFORE_BATCH_NORM:
                torch.testing.assert_close(b, a, rtol=1e-4, atol=5e-5, msg=lambda m, name=name: f"{name}: {m}")
    variances = [m.backbone.layers[0][1].running_var for m in together]
    assert not torch.allclose(variances[0], variances[1])


def test_only_ensembles_of_batchable_backbones_record_batched_members():
    """The option enters a cell's spec only where it acts, so the spec of a plain or LSTM cell says what ran."""
    table = get_table("table5_semg")
    specs = plan(table, table.profile("full"), 1, ["tuned"], ["semg"], Speed(batched_members=True))
    recorded = {s.row.label: s.network.speed for s in specs if s.network}
    assert recorded["DNN x5 (independent)"] == {"batched_members": True}
    assert recorded["DNN"] == recorded["DNN+SE"] == recorded["Deep LSTM x5 (independent)"] == {}
    one_seed = plan(table, table.profile("full"), 1, ["tuned"], ["semg"], Speed(batched_seeds=True))
    assert all(s.network.speed == {} for s in one_seed if s.network)  # nothing to batch with
    seeds = plan(table, table.profile("full"), 2, ["tuned"], ["semg"], Speed(batched_seeds=True))
    recorded = {s.row.label: s.network.speed for s in seeds if s.network}
    assert recorded["DNN"] == {"batched_seeds": True} and recorded["Deep LSTM"] == {}


def test_cell_groups_put_the_seeds_of_a_batched_row_in_one_unit():
    table = get_table("table5_semg")
    todo = [(s, str(k)) for k, s in enumerate(plan(table, table.profile("smoke"), 3, ["tuned", "paper"], ["semg"],
                                                   Speed(batched_seeds=True)))]
    units = cell_groups(todo)
    assert sorted(key for unit in units for _, key in unit) == sorted(key for _, key in todo)  # each cell once
    for unit in units:
        first = unit[0][0]
        if len(unit) > 1:
            assert [s.seed for s, _ in unit] == [0, 1, 2] and len({seed_group(s) for s, _ in unit}) == 1
        else:
            # scikit-learn, nn.LSTM, and a snapshot ensemble's cycles (one after another) do not batch
            assert first.classic is not None or first.network.backbone == "deep_lstm" or first.network.snapshots
    grouped = {(u[0][0].row.label, u[0][0].preset) for u in units if len(u) > 1}
    # the DNN's baseline, SE, weighted-vote, ensemble and DSN rows, at both presets
    assert ("DNN", "tuned") in grouped and ("DNN DSN", "paper") in grouped and len(grouped) == 10
    plain = [(s, str(k)) for k, s in enumerate(plan(table, table.profile("smoke"), 3, ["tuned"], ["semg"]))]
    assert all(len(unit) == 1 for unit in cell_groups(plain))


def test_a_rows_seeds_trained_together_match_their_cells_trained_alone(data_root, tmp_path):
    """On the real sEMG data: each seed's cell of a batched group (its own hold-out rows for the weighted vote,
    an ensemble's members batched as well) learns what its cell learns alone, up to float rounding. The pyramid
    DNN's biases before batch norm turn rounding into steps of size lr (see BIAS_BEFORE_BATCH_NORM), so the
    cells agree to about 1e-3, not to 1e-5 as the MLP above; a seed trained on another seed's rows or weights
    misses by far more."""
    table = get_table("table5_semg")
    rows = ["DNN+SE (accuracy-weighted vote)", "DNN x2 (independent)"]

    def run(out, speed):
        return run_table(table, "smoke", out=tmp_path / out, data_root=data_root, presets=["tuned"], rows=rows,
                         speed=speed)

    alone, together = run("alone", ()), run("together", ("batched_seeds", "batched_members"))
    assert not alone.errors and not together.errors and len(alone.records) == len(together.records) == 4
    # device options are recorded, not keyed: a plain plan (a CPU rebuild of a GPU lease's cells) reports them
    plain = run_table(table, "smoke", out=tmp_path / "together", data_root=data_root, execute=False)
    assert sorted(r["key"] for r in plain.records) == sorted(r["key"] for r in alone.records)
    assert all(r["spec"]["network"]["speed"] for r in plain.records)
    for a, b in zip(alone.records, together.records, strict=True):
        assert (a["model"], a["seed"], a["steps"]) == (b["model"], b["seed"], b["steps"])
        assert b["provenance"]["trained_with_seeds"] == [0, 1] and "trained_with_seeds" not in a["provenance"]
        assert b["epoch_loss"] == pytest.approx(a["epoch_loss"], rel=2e-3)
        mine, theirs = together.outcomes.get(b), alone.outcomes.get(a)
        np.testing.assert_allclose(mine["probabilities"].astype(np.float32),
                                   theirs["probabilities"].astype(np.float32), atol=PROBABILITY_TOLERANCE)
        # a row's vote may flip only where the probabilities sit within the tolerance of a tie: which rows do is
        # the CPU's rounding (on an Intel Xeon 3 of 120, each a tie in float16; none on an AMD EPYC), so no
        # accuracy is asserted
        flipped = mine["predicted"] != theirs["predicted"]
        top2 = np.sort(theirs["probabilities"].astype(np.float32), axis=-1)[:, -2:]
        assert np.all(top2[flipped, 1] - top2[flipped, 0] <= 2 * PROBABILITY_TOLERANCE), "a clear vote flipped"
        if "vote_weights" in a:  # head accuracies on 26 held-out rows: a near-tie may flip one row
            assert b["vote_weights"] == pytest.approx(a["vote_weights"], abs=1.01 / a["n_holdout"])
