"""The per-cell analysis (sharens.model.analysis, sharens.model.flops): known answers on synthetic scores and small
nets."""

import math

import pytest
import torch

from sharens.model.analysis import analyse, diversity, fit_temperature, summarize, temper
from sharens.model.backbones import DeepLSTM, build_backbone
from sharens.model.ensemble import SharingEnsemble
from sharens.model.evaluation import measure
from sharens.model.flops import flops_per_sample, tap_flops
from sharens.model.metrics import METRICS
from sharens.model.voting import VOTES, Ballot


def _overconfident(n: int, temperature: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores softmax(T z) of labels drawn from softmax(z): a temperature of T calibrates them."""
    g = torch.Generator().manual_seed(seed)
    z = 1.5 * torch.randn(n, 5, generator=g)
    y = torch.multinomial(z.softmax(-1), 1, generator=g)[:, 0]
    return (temperature * z).softmax(-1), y


def test_temperature_scaling_recovers_the_temperature_and_calibrates_new_rows():
    held, y_held = _overconfident(20000, 3.0, seed=0)
    assert fit_temperature(held, y_held) == pytest.approx(3.0, rel=0.05)
    test, y_test = _overconfident(20000, 3.0, seed=1)
    ece = METRICS["ece"].compute
    assert ece(temper(test, fit_temperature(held, y_held)), y_test) < 1.0 < 10.0 < ece(test, y_test)
    assert torch.allclose(temper(test, 1.0), test.double(), atol=1e-6)


def test_calibration_errors_of_a_confident_coin():
    scores = torch.tensor([[1.0, 0.0]] * 10)
    targets = torch.tensor([0, 1] * 5)
    assert METRICS["ece"].compute(scores, targets) == pytest.approx(50.0)
    assert METRICS["ace"].compute(scores, targets) == pytest.approx(50.0)
    calibrated = torch.tensor([[0.5, 0.5]] * 10)
    assert METRICS["ace"].compute(calibrated, torch.zeros(10, dtype=torch.long)) == pytest.approx(50.0)
    halves = torch.tensor([[0.5, 0.5]] * 3000)  # right on half the rows at confidence 1/2: calibrated
    assert METRICS["ace"].compute(halves, torch.arange(3000) % 2) < 5.0


def test_diversity_of_identical_and_of_opposite_voters():
    p = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    same = diversity(torch.stack([p, p], dim=1), torch.tensor([0, 1]), ["a", "a"])
    assert same["disagreement"]["all"] == 0 and same["kl"]["all"] == pytest.approx(0, abs=1e-9)
    assert same["mutual_information"]["all"] == pytest.approx(0, abs=1e-9)
    onehot = torch.eye(2)[torch.tensor([0, 1])]
    opposite = diversity(torch.stack([onehot, 1 - onehot], dim=1), torch.tensor([0, 1]), ["a", "b"])
    assert opposite["disagreement"] == {"all": 100.0, "within_group": None, "across_groups": 100.0}
    assert opposite["mutual_information"]["all"] == pytest.approx(math.log(2), rel=1e-4)
    assert opposite["disagreement_over_error"]["all"] == pytest.approx(2.0)  # each errs on half the rows


def test_tap_flops_count_the_backbone_up_to_each_tap_and_the_heads_so_far():
    model = SharingEnsemble(build_backbone("mlp", (16,), widths=(70, 50)), 10, 5)
    first = 2 * 16 * 70 + 5 * 2 * 70 * 10
    assert tap_flops(model, torch.randn(2, 16)) == {"L1": first, "L2": first + 2 * 70 * 50 + 5 * 2 * 50 * 10}
    lstm = SharingEnsemble(DeepLSTM((60,), steps=6, hidden=8, layers=2), 3, 1)
    gates = [2 * 6 * 4 * 8 * (10 + 8), 2 * 6 * 4 * 8 * (8 + 8)]
    head = 2 * 48 * 3
    assert tap_flops(lstm, torch.randn(2, 60)) == {"lstm1": gates[0] + head, "lstm2": sum(gates) + 2 * head}
    resnet = SharingEnsemble(build_backbone("cifar_resnet", (3, 32, 32), n=1), 10, 2)
    costs = tap_flops(resnet, torch.randn(2, 3, 32, 32))
    assert list(costs) == resnet.taps and list(costs.values()) == sorted(costs.values())
    assert costs["pool"] == flops_per_sample(resnet, torch.randn(2, 3, 32, 32))


def _cell(seed: int, rows: int = 400, classes: int = 4):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (rows,), generator=g)
    logits = torch.randn(rows, 4, classes, generator=g)
    logits[torch.arange(rows), 2:, y] += 2.5  # the deeper tap knows more
    logits[torch.arange(rows), :2, y] += 0.8
    return 3 * logits, y  # and is overconfident


@pytest.mark.slow
def test_analysis_fits_on_held_out_rows_only_and_reports_every_voter_group():
    test, y_test = _cell(0)
    held, y_held = _cell(1)
    vote = lambda logits: VOTES["soft"].scores(logits, Ballot(y_test))  # noqa: E731
    names = ["L1/h0", "L1/h1", "L2/h0", "L2/h1"]
    args = (["L1", "L1", "L2", "L2"], {"L1": 40.0, "L2": 100.0}, vote, names, measure(vote(test), y_test))
    result = analyse(test, y_test, held, y_held, *args)
    assert set(result["calibration"]) == {"vote", "group L1", "group L2", "prefix L1", *(f"head {n}" for n in names)}
    own = result["calibration"]["vote"]
    # the cell's own vote is measured once, by the record's computation, never again in float64
    assert own["before"] == pytest.approx(measure(vote(test), y_test), rel=1e-4)
    marked = analyse(test, y_test, None, None, *args[:-1], {"accuracy": -1.0})
    assert marked["calibration"]["vote"]["before"] == {"accuracy": -1.0}
    assert own["before"]["accuracy"] == pytest.approx(METRICS["accuracy"].compute(vote(test), y_test), rel=1e-4)
    assert own["temperature"] != 1 and own["after"]["nll"] < own["before"]["nll"]
    assert [p["flops_share"] for p in result["anytime"]] == [0.4, 1.0]
    assert {p["budget"] for p in result["early_exit"]} == {0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0}
    # whatever the test rows say, the fitted temperature and thresholds are the held-out rows' own
    flipped = analyse(test.flip(0), y_test.flip(0) * 0, held, y_held, *args)
    assert flipped["calibration"]["vote"]["temperature"] == own["temperature"]
    assert [p["threshold"] for p in flipped["early_exit"]] == [p["threshold"] for p in result["early_exit"]]
    without = analyse(test, y_test, None, None, *args)
    assert without["calibration"]["vote"]["after"] is None and "early_exit" not in without
    few = analyse(test, y_test, held[:10], y_held[:10], *args)  # too few rows to fit anything on
    assert few["held_out_rows"] == 10 and few["calibration"]["vote"]["temperature"] is None
    assert "early_exit" not in few and summarize([result, few])["calibration"]["vote"]["after"] is None


def test_an_older_analysis_reads_the_records_measure_of_its_own_vote():
    """Records analysed before the analysis took the record's metrics measured the vote again in float64: a
    report now shows one number for one vote."""
    from benchmarks import get_table
    from sharens.judge.legacy import upgrade

    metrics = {"accuracy": 31.64, "ece": 31.22}
    record = {"metrics": metrics, "analysis": {"calibration": {"vote": {"before": {"accuracy": 30.27, "ece": 30.8},
                                                                       "after": None}, "head a": {}}}}
    upgraded = upgrade(record, get_table("table7_uci"))
    assert upgraded["analysis"]["calibration"]["vote"]["before"] == metrics
    assert record["analysis"]["calibration"]["vote"]["before"]["accuracy"] == 30.27  # the stored record untouched
    assert upgraded["analysis"]["calibration"]["head a"] == {}


def test_adaptive_calibration_error_is_a_function_of_the_data():
    """Rows of equal top score fall into the bins in row order, so the same rows give the same ACE."""
    scores = torch.tensor([[0.6, 0.4]] * 30 + [[0.9, 0.1]] * 15)
    targets = torch.tensor([0] * 15 + [1] * 15 + [0] * 15)
    values = {METRICS["ace"].compute(scores, targets) for _ in range(20)}
    assert len(values) == 1
    # bins of 3 rows in row order: 5 bins all right at 0.6 (gap 40), 5 all wrong (60), 5 at 0.9 all right (10)
    assert values.pop() == pytest.approx((5 * 40 + 5 * 60 + 5 * 10) / 15, rel=1e-5)


@pytest.mark.slow
def test_summary_over_seeds_averages_and_pools_the_reliability_bins():
    held, y_held = _cell(9)
    vote = lambda logits: VOTES["soft"].scores(logits, Ballot(None))  # noqa: E731
    cells = [analyse(test, y, held, y_held, ["L1", "L1", "L2", "L2"], {"L1": 40.0, "L2": 100.0}, vote,
                     ["a", "b", "c", "d"], measure(vote(test), y)) for test, y in map(_cell, range(3))]
    summary = summarize(cells)
    assert summary["cells"] == 3
    ece = [c["calibration"]["vote"]["before"]["ece"] for c in cells]
    assert summary["calibration"]["vote"]["before"]["ece"] == pytest.approx(sum(ece) / 3, rel=1e-4)
    assert sum(summary["reliability"]["before"]["rows"]) == 3 * 400
    assert summary["at_half_flops"]["anytime"] == summary["anytime"][0]["accuracy"]  # L1: 40% of the FLOPs
