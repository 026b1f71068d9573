"""The cost model: measured once per model and device, kept, and scaled by the work a cell does."""

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from benchmarks import get_table
from sharens import costs
from sharens.cli import main
from sharens.data import cache_dir
from sharens.executors import PreparedData
from sharens.plan import plan
from sharens.runner import run_table

CPU = torch.device("cpu")


def test_the_cost_model_measures_each_model_once_and_keeps_it(data_root, tmp_path, monkeypatch):
    table = get_table("table5_semg")
    run = run_table(table, "smoke", out=tmp_path, data_root=data_root, execute=False, estimate=True,
                    estimate_plan=True)
    assert run.estimated_seconds > 0 and run.bound_seconds == run.estimated_seconds  # nothing finished yet
    assert run.plan_bound_seconds == run.bound_seconds  # nothing stored: the whole plan is still to run
    assert "thread" in run.device_name and (cache_dir() / "costs.json").exists()

    def measured_again(*args):
        raise AssertionError("a kept measurement was taken again")

    monkeypatch.setattr(costs, "_network_rate", measured_again)
    monkeypatch.setattr(costs, "_classic_seconds", measured_again)
    again = run_table(table, "smoke", out=tmp_path, data_root=data_root, execute=False, estimate=True)
    assert again.estimated_seconds == run.estimated_seconds
    one_row = run_table(table, "smoke", out=tmp_path, data_root=data_root, execute=False, estimate=True,
                        estimate_plan=True, rows=["DNN"])
    assert one_row.plan_bound_seconds == run.plan_bound_seconds > one_row.bound_seconds > 0


def test_a_plan_whose_cells_are_all_stored_times_nothing(data_root, tmp_path, monkeypatch):
    """A dry run at the committed results answers without timing a model: only cells still to run are timed."""
    for name in ("table5_semg.json", "table5_semg.outcomes.npz"):
        shutil.copy(Path(__file__).resolve().parent.parent / "results" / "smoke" / name, tmp_path / name)

    def measured(*args):
        raise AssertionError("a model was timed for a stored cell")

    monkeypatch.setattr(costs, "_network_rate", measured)
    monkeypatch.setattr(costs, "_classic_seconds", measured)
    run = run_table(get_table("table5_semg"), "smoke", out=tmp_path, data_root=data_root, execute=False,
                    estimate=True)
    assert len(run.records) == run.planned and run.bound_seconds == run.estimated_seconds == 0


def test_a_cells_estimate_grows_with_its_epochs_and_members(data_root, tmp_path):
    table = get_table("table5_semg")
    spec = next(s for s in plan(table, table.profile("smoke"), 1, ["tuned"], ["semg"])
                if s.network and s.network.members == 1)
    data = PreparedData(CPU, data_root).for_spec(spec)
    model = costs.CostModel(CPU, 1, tmp_path / "costs.json")
    one = model.seconds(spec, data)
    assert model.seconds(spec, data, epochs=2 * spec.network.epochs) > 1.5 * one
    doubled = dataclasses.replace(spec, network=dataclasses.replace(spec.network, members=2))
    assert model.seconds(doubled, data) == pytest.approx(2 * one)


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
    monkeypatch.setattr(costs.CostModel, "seconds", lambda self, spec, data, epochs=None: 60.0)
    assert main(["list", "--table", "table5_semg", "--costs", "--device", "cpu", "--data-root", str(data_root)]) == 0
    out = capsys.readouterr().out
    assert out.count("    cost: at most") == 3  # smoke, quick, full
    assert "at most 2.1 h for its 125 cells on" in out  # full: 125 cells of a minute each
