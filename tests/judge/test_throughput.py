"""Throughput claims (`sharens.judge.throughput`, `sharens.execution.timing`): step times in paired rounds, judged by
tolerance, stored like cells, and a CI check that fails when SE's step gets slower."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from benchmarks import get_table
from sharens import regress
from sharens.execution import timing
from sharens.execution.executors import PreparedData
from sharens.execution.runner import pair_throughput, pending
from sharens.judge import throughput
from sharens.model import ensemble
from sharens.suite.table import ThroughputTolerance

CPU = torch.device("cpu")


def _entry(train: dict[str, float], predict: dict[str, float], flops: dict[str, float], members: int = 5) -> dict:
    """A measurement whose every round has the given seconds (and a 1% wobble, so intervals have width)."""
    wobble = [1.0, 1.01, 0.99, 1.0, 1.005, 0.995, 1.0]
    return {"variants": {v: {"train_seconds": [train[v] * w for w in wobble],
                             "predict_seconds": [predict[v] * w for w in wobble[::-1]],
                             "flops_per_sample": flops[v], "members": members if v == "independent" else 1}
                         for v in train}}


def test_cost_claims_are_judged_against_the_flop_floor_plus_a_margin():
    tolerance = ThroughputTolerance(se_margin=0.10, ensemble_margin=1.5)
    cheap = _entry({"baseline": 1.0, "se": 1.05, "independent": 5.0}, {"baseline": 1.0, "se": 1.3, "independent": 5},
                   {"baseline": 100.0, "se": 103.0, "independent": 500.0})
    judged = {c["claim"]: c for c in throughput.judge(cheap, tolerance)}
    assert judged["se_train_step"]["verdict"] == throughput.WITHIN  # 1.05 against 1.03 + 0.10
    assert judged["se_train_step"]["bound"] == pytest.approx(1.13)
    assert judged["se_predict"]["verdict"] == throughput.EXCEEDS  # 1.3 against 1.13
    assert judged["ensemble_over_se"]["verdict"] == throughput.WITHIN  # 4.76 against 5 - 1.5
    assert judged["ensemble_over_se"]["ratio"] == pytest.approx(5.0 / 1.05, rel=0.02)
    batched = _entry({"baseline": 1.0, "se": 1.05, "independent": 2.0}, {"baseline": 1.0, "se": 1.0, "independent": 2},
                     {"baseline": 100.0, "se": 103.0, "independent": 500.0})
    judged = {c["claim"]: c for c in throughput.judge(batched, tolerance)}
    assert judged["ensemble_over_se"]["verdict"] == throughput.FALLS_SHORT
    noisy = _entry({"baseline": 1.0, "se": 1.13}, {"baseline": 1.0, "se": 1.0}, {"baseline": 100.0, "se": 103.0})
    noisy["variants"]["se"]["train_seconds"][0] *= 1.3
    judged = {c["claim"]: c for c in throughput.judge(noisy, tolerance)}
    assert judged["se_train_step"]["verdict"] == throughput.INCONCLUSIVE and "ensemble_over_se" not in judged


def _letter_dnn(profile: str, data_root: Path) -> tuple[dict, object]:
    table = get_table("table7_uci")
    work = pending(table, profile, out=Path("/nonexistent"), data_root=data_root)
    specs = throughput.pair_specs(work.keyed)[("letter", "DNN", "tuned")]
    return specs, PreparedData(CPU, data_root).for_spec(specs["baseline"][0])


def _one_by_one(self, activation):
    """FusedHeads with its J heads computed one after another: a slower SE with the same numbers."""
    flat = activation.flatten(1)
    weight = self.weight.view(self.num_heads, self.num_classes, -1)
    bias = self.bias.view(self.num_heads, self.num_classes)
    return torch.stack([F.linear(flat, weight[h], bias[h]) for h in range(self.num_heads)], 1)


@pytest.mark.slow
@pytest.mark.timing
def test_regress_fails_when_se_heads_run_one_by_one(data_root, monkeypatch):
    """The smoke letter DNN's step times as the reference, then again (no failure), then with each tap's heads
    run one by one instead of fused (a failure that names the claim)."""
    specs, data = _letter_dnn("smoke", data_root)
    table = get_table("table7_uci")

    def document():
        found = {"dataset": "letter", "pair": "DNN", **timing.measure(specs, data, CPU)}
        return {"throughput": [{**found, "claims": throughput.judge(found, table.throughput)}]}

    reference = document()
    assert set(reference["throughput"][0]["variants"]) == {"baseline", "se", "dsn", "independent"}
    assert all(len(v["train_seconds"]) == throughput.ROUNDS for v in reference["throughput"][0]["variants"].values())
    def ratios(doc):
        return {c["claim"]: (round(c["ratio"], 3), round(c["low"], 3), round(c["high"], 3))
                for c in doc["throughput"][0]["claims"]}

    again = document()
    assert regress.compare_throughput(reference, again) == [], (ratios(reference), ratios(again))
    monkeypatch.setattr(ensemble.FusedHeads, "forward", _one_by_one)
    slowed = document()
    problems = regress.compare_throughput(reference, slowed)
    assert problems and "training step" in " ".join(problems), (ratios(reference), ratios(slowed))


@pytest.mark.slow
def test_a_pairs_measurement_is_stored_keyed_and_reused(data_root, tmp_path, monkeypatch):
    table = get_table("table5_semg")
    work = pending(table, "smoke", out=tmp_path, data_root=data_root)
    calls = []
    real = timing.measure

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(timing, "measure", counted)
    first = pair_throughput(table, work.keyed, work.store, tmp_path, CPU, data_root, measure=True)
    assert {(m["dataset"], m["pair"]) for m in first} == {("semg", "DNN"), ("semg", "Deep LSTM")}
    assert len(calls) == 2 and all(m["device"].endswith("(1 thread)") for m in first)
    again = pair_throughput(table, work.keyed, work.store, tmp_path, CPU, data_root, measure=True)
    assert again == first and len(calls) == 2  # stored: not measured again
    shown = pair_throughput(table, work.keyed, work.store, tmp_path, CPU, data_root, measure=False)
    assert shown == first
