"""Snapshot ensembles: the baseline trained once in cosine cycles, one voter per cycle's end (issue 11)."""

import pytest
import torch

from benchmarks import get_table
from sharens.data import load_dataset
from sharens.execution.cell import _seeded_model, fixed_threads, prepare
from sharens.execution.runner import run_table
from sharens.suite.plan import plan
from sharens.train.loop import optimizer_for, train
from sharens.train.presets import PRESETS, Preset
from sharens.train.speed import Speed


def test_a_cosine_preset_anneals_its_run_from_lr0_to_lr_min():
    preset = Preset("cos", 1e-2, 1e-4, "test", cosine=True)
    optimizer, schedule = optimizer_for([torch.zeros(1, requires_grad=True)], preset, 11)
    rates = []
    for _ in range(11):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates[0] == pytest.approx(1e-2) and rates[-1] == pytest.approx(1e-4)
    assert rates[5] == pytest.approx((1e-2 + 1e-4) / 2)  # half-way down half a cosine
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))


def test_snapshot_rows_plan_whole_cosine_cycles_within_the_epoch_cap():
    table = get_table("table7_uci")
    specs = plan(table, table.profile("full"), 2, ["tuned"], list(table.datasets), Speed(batched_seeds=True))
    snapshot = {s.dataset: s.network for s in specs if s.row.variant == "snapshot" and s.row.pair == "DNN"}
    assert {d: (n.snapshots, n.epochs) for d, n in snapshot.items()} == {
        "letter": (5, 100), "adult": (5, 40), "yeast": (5, 200)}  # the caps: 100, 40, 200 epochs
    for net in snapshot.values():
        assert net.optimizer["cosine"] and net.patience is None and net.speed == {}  # cycles run one by one
    baseline = next(s for s in specs if s.row.variant == "baseline")
    assert "snapshots" not in baseline.key_dict()["network"]  # stored cells keep their keys
    assert "cosine" not in baseline.network.optimizer


def test_a_snapshot_row_is_labelled_with_the_snapshots_its_cells_vote():
    from benchmarks import TABLES

    checked = 0
    for table_id in TABLES:
        table = get_table(table_id)
        for profile in table.profiles.values():
            for spec in plan(table, profile, 1, list(table.presets), list(table.datasets), Speed()):
                if spec.row.variant == "snapshot":
                    assert spec.row.label.endswith(f" snapshots x{spec.network.snapshots}"), (table_id, profile)
                    assert spec.network.snapshots > 1
                    checked += 1
    assert checked  # Table 6 at quick trains IMDB 2 epochs: 2 snapshots, and its LSTM (1 epoch) none


def test_a_snapshot_cell_votes_the_ends_of_its_cycles(data_root, tmp_path):
    """On the real sEMG data: one voter per cycle, each cycle judged on its own curve; the first cycle is a plain
    run of the cosine preset from the cell's seed, and later cycles go on from where it ended."""
    table = get_table("table5_semg")
    run = run_table(table, "smoke", out=tmp_path, data_root=data_root, seeds=1, presets=["tuned"],
                    rows=["DNN snapshots x2"])
    (record,) = run.records
    assert record["head_names"] == ["snapshot0", "snapshot1"] and len(record["member_curves"]) == 2
    assert len(record["epoch_loss"]) == record["spec"]["network"]["epochs"] == 2
    assert run.outcomes.get(record)["heads"].shape == (120, 2)
    net = next(s.network for s in plan(table, table.profile("smoke"), 1, ["tuned"], ["semg"])
               if s.row.variant == "snapshot" and s.row.pair == "DNN")
    data = prepare(load_dataset("semg", data_root), 256, 120, torch.device("cpu"))
    x, y = data.x(None)[0], data.y_train
    with fixed_threads(1):  # as the cell ran
        model = _seeded_model(net, x, data.num_classes, 0)
        first = train(model, x, y, preset=Preset(**net.optimizer), epochs=1, batch_size=net.batch_size, seed=0)
    assert record["member_curves"][0]["epoch_loss"] == first.epoch_loss
    assert record["member_curves"][1]["epoch_loss"][0] < record["member_curves"][0]["epoch_loss"][0]
    assert net.optimizer == {**PRESETS["tuned"].config(), "cosine": True}
