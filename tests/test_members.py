"""Batched ensemble members (`sharens.members`): member k of one vmap-ed run is a separate run of its seed."""

import pytest
import torch

from benchmarks import get_table
from sharens.backbones import build_backbone
from sharens.ensemble import SharingEnsemble
from sharens.members import train_members
from sharens.plan import plan
from sharens.training import PRESETS, Speed, predict_logits, train

SEEDS = [3, 1003, 2003]
# A linear layer's bias that feeds a batch norm has zero gradient in exact arithmetic (the norm subtracts the
# batch mean), so Adam scales its rounding noise up to steps of size lr; it and the running mean that follows
# it wander apart in any two runs that round differently (by ~1e-3 in eval-mode logits).
BIAS_BEFORE_BATCH_NORM = {f"backbone.layers.{i}.{part}" for i in range(4) for part in ("0.bias", "1.running_mean")}


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
def test_member_k_of_a_batched_run_equals_a_separate_run_of_its_seed(rule):
    """Own initialisation, data order and stopping rule: weights, curves, kept epoch and test logits match a
    plain `train` of each seed to float tolerance (batched kernels sum in another order)."""
    x, y = _task()
    heldout = (x[500:], y[500:]) if rule.get("stop_on") == "heldout_loss" else None
    options = dict(preset=PRESETS["tuned"], epochs=20, batch_size=50, heldout=heldout, **rule)
    alone = []
    for seed in SEEDS:
        model = _member(seed)
        alone.append((model, train(model, x[:500], y[:500], seed=seed, **options)))
    together = [_member(seed) for seed in SEEDS]
    results = train_members(together, x[:500], y[:500], seeds=SEEDS, **options)

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
    """The option enters a cell's spec (and key) only where it acts, so plain and LSTM cells keep their keys."""
    table = get_table("table5_semg")
    specs = plan(table, table.profile("full"), 1, ["tuned"], ["semg"], Speed(batched_members=True))
    recorded = {s.row.label: s.network.speed for s in specs if s.network}
    assert recorded["DNN x5 (independent)"] == {"batched_members": True}
    assert recorded["DNN"] == recorded["DNN+SE"] == recorded["Deep LSTM x5 (independent)"] == {}
