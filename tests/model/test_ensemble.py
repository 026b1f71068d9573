"""The SE maths: fused heads, weighted loss, voting rules, baseline construction."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sharens.model.backbones import DeepLSTM, PyramidDNN, build_backbone, pyramid_widths
from sharens.model.ensemble import FusedHeads, SharingEnsemble
from sharens.model.voting import VOTES, Ballot, get_vote, hard_vote, head_accuracies, soft_vote


def test_fused_heads_equal_separate_linear_layers():
    torch.manual_seed(0)
    linears = [nn.Linear(12, 4) for _ in range(5)]
    fused = FusedHeads.from_linears(linears)
    x = torch.randn(7, 3, 4)  # a tap with a non-flat activation
    separate = torch.stack([lin(x.flatten(1)) for lin in linears], dim=1)
    torch.testing.assert_close(fused(x), separate, rtol=0, atol=1e-6)


def test_fused_heads_gradients_equal_separate_layers():
    torch.manual_seed(0)
    linears = [nn.Linear(6, 3) for _ in range(4)]
    fused = FusedHeads.from_linears(linears)
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    sum(F.cross_entropy(lin(x), y) for lin in linears).backward()
    F.cross_entropy(fused(x).reshape(-1, 3), y.repeat_interleave(4), reduction="sum").div(8).backward()
    torch.testing.assert_close(fused.weight.grad, torch.cat([lin.weight.grad for lin in linears]))


def test_fused_heads_init_like_nn_linear():
    torch.manual_seed(0)
    heads = FusedHeads(400, 10, 5)
    bound = 1 / math.sqrt(400)
    assert heads.weight.abs().max() <= bound and heads.bias.abs().max() <= bound
    assert heads.weight.std() > bound / 3  # not a degenerate init


def _se(**kw):
    torch.manual_seed(0)
    return SharingEnsemble(PyramidDNN((8,), pyramid_widths(32, 8)), num_classes=3, **kw)


def test_heads_per_tap_and_names():
    model = _se(heads_per_tap=5)
    assert model.taps == ["L2", "L4", "L6", "L8"]
    assert len(model.head_names) == 20 and model.head_names[0] == "L2/h0"
    assert model(torch.randn(4, 8)).shape == (4, 20, 3)


def test_baseline_is_one_head_on_the_last_tap():
    torch.manual_seed(0)
    base = SharingEnsemble.baseline(PyramidDNN((8,), pyramid_widths(32, 8)), 3)
    assert base.taps == ["L8"] and base(torch.randn(4, 8)).shape == (4, 1, 3)


def test_loss_is_weighted_sum_of_head_cross_entropies():
    model = _se(heads_per_tap=2, tap_weights={"L2": 0.0, "L8": 3.0})
    logits, y = torch.randn(6, 8, 3), torch.randint(0, 3, (6,))
    expected = sum(
        w * F.cross_entropy(logits[:, h], y)
        for h, w in enumerate([0, 0, 1, 1, 1, 1, 3, 3])
    )
    torch.testing.assert_close(model.loss(logits, y), torch.as_tensor(expected, dtype=torch.float32))


def test_zero_tap_weight_gives_that_tap_no_gradient():
    model = _se(heads_per_tap=2, tap_weights={"L2": 0.0})
    x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
    model.loss(model(x), y).backward()
    assert model.heads["L2"].weight.grad.abs().max() == 0
    assert model.heads["L4"].weight.grad.abs().max() > 0


@pytest.mark.parametrize("kw, message", [
    ({"taps": ["L3"]}, "not in the backbone"),
    ({"heads_per_tap": 0}, "heads_per_tap"),
    ({"taps": ["L8"], "tap_weights": {"L2": 1.0}}, "without heads"),
])
def test_impossible_configurations_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        _se(**kw)


def _winner(logits, rule, heldout=None, targets=None):
    ballot = Ballot(torch.zeros(len(logits), dtype=torch.long) if targets is None else targets, heldout)
    scores = get_vote(rule).scores(logits, ballot)
    return None if scores is None else scores.argmax(-1).item()


def test_soft_vote_is_weighted_mean_of_probabilities():
    logits = torch.tensor([[[5.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])
    p = logits.softmax(-1)[0]
    torch.testing.assert_close(soft_vote(logits, torch.ones(3))[0], p.mean(0))
    # One confident head outvotes two lukewarm ones under soft voting...
    assert _winner(logits, "soft") == 0
    # ...but loses a majority vote.
    assert _winner(logits, "hard") == 1
    torch.testing.assert_close(hard_vote(logits, torch.ones(3))[0], torch.tensor([1.0, 2.0]) / 3)


def test_accuracy_weighted_vote_follows_the_accurate_heads():
    logits = torch.tensor([[[5.0, 0.0], [0.0, 1.0], [0.0, 1.0]]])
    assert _winner(logits, "accuracy_weighted", torch.tensor([1.0, 0.1, 0.1])) == 0
    assert _winner(logits, "accuracy_weighted", torch.tensor([0.1, 1.0, 1.0])) == 1
    assert _winner(logits, "accuracy_weighted") is None  # no held-out accuracies: the rule does not apply
    with pytest.raises(ValueError, match="unknown vote 'median'"):
        get_vote("median")


def test_last_and_best_head_votes_read_one_head():
    logits = torch.tensor([[[5.0, 0.0], [0.0, 1.0]], [[0.0, 5.0], [0.0, 1.0]]])
    assert _winner(logits[:1], "last_head") == 1
    best = get_vote("best_head").scores(logits, Ballot(torch.tensor([0, 1])))
    assert best.argmax(-1).tolist() == [0, 1]  # head 0 is right on both rows
    for vote in VOTES.values():  # every rule's scores are a distribution per row
        scores = vote.scores(logits, Ballot(torch.tensor([0, 1]), torch.tensor([0.5, 0.5])))
        torch.testing.assert_close(scores.sum(-1), torch.ones(2))


def test_head_accuracies():
    logits = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])
    torch.testing.assert_close(head_accuracies(logits, torch.tensor([0, 0])), torch.tensor([1.0, 0.5]))


def test_pyramid_widths_shrink_by_sqrt2():
    assert pyramid_widths(256, 8) == [256, 181, 128, 91, 64, 45, 32, 23]


def test_deep_lstm_taps_every_layer_on_6x500_rows():
    lstm = DeepLSTM((3000,), steps=6, hidden=16, layers=3)
    taps = lstm(torch.randn(2, 3000))
    assert list(taps) == ["lstm1", "lstm2", "lstm3"]
    assert all(t.flatten(1).shape[1] == lstm.tap_features[n] == 96 for n, t in taps.items())
    with pytest.raises(ValueError, match="equal steps"):
        DeepLSTM((3001,), steps=6, hidden=4, layers=1)


def test_mlp_taps_after_each_hidden_layer():
    mlp = build_backbone("mlp", 16, widths=(70, 50))
    assert mlp.tap_features == {"L1": 70, "L2": 50}
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("transformer", 16)


def test_flop_count_includes_the_lstm_layers():
    from sharens.model.flops import flops_per_sample

    model = SharingEnsemble.baseline(DeepLSTM((60,), steps=6, hidden=8, layers=2), 3)
    head = 2 * 48 * 3
    lstm = 2 * 6 * 4 * 8 * (10 + 8) + 2 * 6 * 4 * 8 * (8 + 8)
    assert flops_per_sample(model, torch.randn(2, 60)) == head + lstm


@pytest.mark.parametrize("depth, params", [(20, 0.27e6), (32, 0.46e6), (44, 0.66e6), (56, 0.85e6), (110, 1.7e6)])
def test_cifar_resnet_parameter_counts_match_he_et_al(depth, params):
    n = (depth - 2) // 6
    for residual in (True, False):  # option-A shortcuts have no parameters: plain nets count the same
        net = SharingEnsemble.baseline(build_backbone("cifar_resnet", (3, 32, 32), n=n, residual=residual), 10)
        count = sum(p.numel() for p in net.parameters())
        assert float(f"{count:.2g}") == params  # the paper rounds to two significant digits


def test_cifar_resnet_taps_mid_and_end_of_each_stage():
    net = build_backbone("cifar_resnet", (3, 32, 32), n=3)
    assert net.tap_features == {"s1b1": 16, "s1b3": 16, "s2b1": 32, "s2b3": 32, "s3b1": 64, "pool": 64}
    taps = net(torch.randn(2, 3, 32, 32))
    assert list(taps) == list(net.tap_features) and taps["pool"].shape == (2, 64)
    flat = build_backbone("cifar_resnet", (3, 32, 32), n=3, readout="flatten")
    assert flat.tap_features["s1b1"] == 16 * 32 * 32 and flat.tap_features["s2b3"] == 32 * 16 * 16


def test_option_a_shortcut_subsamples_and_zero_pads_channels():
    from sharens.model.backbones import _ResidualPair

    block = _ResidualPair(16, 32, stride=2, residual=True)
    x = torch.randn(2, 16, 8, 8)
    short = block.shortcut(x)
    assert short.shape == (2, 32, 4, 4)
    torch.testing.assert_close(short[:, 8:24], x[:, :, ::2, ::2])
    assert short[:, :8].abs().sum() == 0 and short[:, 24:].abs().sum() == 0


def test_first_layer_gradient_norm_matches_autograd_and_leaves_no_grads():
    from sharens.model.diagnostics import first_layer, first_layer_gradient_norm

    torch.manual_seed(0)
    net = build_backbone("convnet", (1, 8, 8), dims=2, layers=((4, 1),) * 6, activation="tanh", batch_norm=False)
    model = SharingEnsemble(net, 3, heads_per_tap=2)
    x, y = torch.randn(5, 1, 8, 8), torch.randint(0, 3, (5,))
    norm = first_layer_gradient_norm(model, x, y)
    assert first_layer(model) is net.layers[0][0].weight
    assert all(p.grad is None for p in model.parameters())
    model.loss(model(x), y).backward()
    assert norm == pytest.approx(net.layers[0][0].weight.grad.norm().item())


def test_calibration_metrics_by_hand():
    from sharens.model.metrics import METRICS

    scores, y = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]), torch.tensor([0, 1, 1])
    assert METRICS["nll"].compute(scores, y) == pytest.approx(-(math.log(0.9) + math.log(0.4) + math.log(0.8)) / 3)
    assert METRICS["brier"].compute(scores, y) == pytest.approx((0.02 + 0.72 + 0.08) / 3)
    # confidences 0.9 (right), 0.6 (wrong), 0.8 (right) fall in three bins: (0.1 + 0.6 + 0.2) / 3
    assert METRICS["ece"].compute(scores, y) == pytest.approx(30.0)
    assert METRICS["nll"].compute(torch.tensor([[1.0, 0.0]]), torch.tensor([1])) == pytest.approx(-math.log(1e-7))


def test_metrics_of_a_net_that_output_nan_are_none_not_a_crash():
    from sharens.model.evaluation import measure

    scores = torch.tensor([[float("nan"), float("nan")], [0.3, 0.7]])
    values = measure(scores, torch.tensor([0, 1]))
    assert values["nll"] is None and values["ece"] is not None and values["accuracy"] is not None
