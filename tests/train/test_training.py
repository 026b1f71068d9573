"""The training loop: determinism, learning at all, divergence detection; statistics and verdicts."""

from dataclasses import asdict

import numpy as np
import pytest
import torch

from sharens.judge import stats
from sharens.model.backbones import build_backbone
from sharens.model.ensemble import SharingEnsemble
from sharens.train.loop import predict_logits, train
from sharens.train.presets import PRESETS, Preset
from sharens.train.speed import FP32, Speed


def _task(seed=0, n=512):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return x, y


def _fit(seed, preset=PRESETS["tuned"], backbone="pyramid_dnn", speed=FP32, **options):
    torch.manual_seed(seed)
    options = options or {"first_width": 32, "depth": 4}
    model = SharingEnsemble(build_backbone(backbone, 10, **options), 2, heads_per_tap=3)
    x, y = _task()
    result = train(model, x, y, preset=preset, epochs=20, batch_size=64, seed=seed, speed=speed)
    return model, result, x, y


def test_same_seed_gives_bit_identical_model_and_logits():
    a, ra, x, _ = _fit(3)
    b, rb, _, _ = _fit(3)
    assert torch.equal(predict_logits(a, x), predict_logits(b, x))
    assert ra.final_loss == rb.final_loss and ra.steps == rb.steps == 160


@pytest.mark.slow
def test_a_run_resumed_from_its_checkpoint_ends_as_the_same_run_in_one_go(tmp_path, monkeypatch):
    """Killed after some epochs and run again, a run resumes after its last saved epoch and ends bit-identical to
    one run in one go (weights, curves, the epoch it keeps), and its file is removed. A file that another device
    wrote, or a run with other device options (which a cell's key leaves out), is not resumed from."""
    from sharens.train import checkpoint, loop

    monkeypatch.setattr(checkpoint, "EVERY_SECONDS", 0.0)
    x, y = _task()

    def jitter(batch, generator):  # draws from the run's generator, as the image augmentations do
        return batch + 0.1 * torch.randn(batch.shape, generator=generator)

    def fit(path):
        torch.manual_seed(0)
        model = SharingEnsemble(build_backbone("pyramid_dnn", 10, first_width=32, depth=4), 2, heads_per_tap=3)
        result = train(model, x[64:], y[64:], preset=PRESETS["tuned"], epochs=8, batch_size=64, seed=0,
                       augment=jitter, heldout=(x[:64], y[:64]), patience=20, checkpoint=path)
        return model, result

    def same(a, b):
        assert all(torch.equal(v, b[0].state_dict()[k]) for k, v in a[0].state_dict().items())
        assert (a[1].epoch_loss, a[1].heldout_loss, a[1].best_epoch, a[1].steps) == \
            (b[1].epoch_loss, b[1].heldout_loss, b[1].best_epoch, b[1].steps)

    whole = fit(None)
    end_epoch = loop.Progress.end_epoch

    def killed_in_epoch_5(progress, epoch, *args):
        if epoch == 5:
            raise KeyboardInterrupt
        end_epoch(progress, epoch, *args)

    path = tmp_path / "cell.seed0.pt"
    monkeypatch.setattr(loop.Progress, "end_epoch", killed_in_epoch_5)
    with pytest.raises(KeyboardInterrupt):
        fit(path)
    monkeypatch.setattr(loop.Progress, "end_epoch", end_epoch)
    resumed = fit(path)
    assert resumed[1].resumed_after == [4] and not path.exists()
    same(resumed, whole)

    for written_elsewhere in ({"device": "another device"}, {"options": asdict(Speed(channels_last=True))}):
        monkeypatch.setattr(loop.Progress, "end_epoch", killed_in_epoch_5)
        with pytest.raises(KeyboardInterrupt):
            fit(path)
        torch.save({**torch.load(path, weights_only=True), **written_elsewhere}, path)
        monkeypatch.setattr(loop.Progress, "end_epoch", end_epoch)
        restarted = fit(path)
        assert restarted[1].resumed_after == []
        same(restarted, whole)


def test_different_seeds_differ():
    a, *_ = _fit(1)
    b, _, x, _ = _fit(2)
    assert not torch.equal(predict_logits(a, x), predict_logits(b, x))


def test_training_learns_an_easy_task():
    model, result, x, y = _fit(0)
    assert result.diverged_at_step is None
    accuracy = (predict_logits(model, x).argmax(-1) == y[:, None]).float().mean()
    assert accuracy > 0.9


def test_exploding_loss_is_reported_with_its_step():
    blowup = Preset("blowup", lr0=1e6, lr_min=1e5, why="test")
    _, result, _, _ = _fit(0, preset=blowup, backbone="mlp", widths=(32, 32))
    assert result.diverged_at_step is not None and 0 < result.diverged_at_step <= 160


def test_explosion_is_judged_per_head_so_many_heads_are_not_held_against_se(monkeypatch):
    """The SE loss is a sum over heads: with 2 taps x 3 heads an ordinary CE of ~0.7 per head sums to ~4."""
    import sharens.train.loop

    monkeypatch.setattr(sharens.train.loop, "EXPLODED_LOSS", 1.0)
    model, result, _, _ = _fit(0)  # 6 heads, CE near ln 2 each at the start
    assert len(model.head_names) == 6 and result.diverged_at_step is None
    monkeypatch.setattr(sharens.train.loop, "EXPLODED_LOSS", 0.05)  # below any CE this early
    assert _fit(0)[1].diverged_at_step == 0


def test_summary_and_t_interval():
    s = stats.summarize([1.0, 2.0, 3.0])
    assert s == {"mean": 2.0, "std": 1.0, "n": 3, "values": [1.0, 2.0, 3.0]}
    low, high = stats.t_interval([1.0, 2.0, 3.0])
    assert abs(high - 2.0 - 4.302652729911275 / 3**0.5) < 1e-9 and low < 2.0
    assert stats.t_interval([1.0]) is None


def test_row_verdicts_need_the_whole_interval_inside_or_outside_the_band():
    def interval(low, high):
        return {"low": low, "high": high}

    assert stats.row_verdict(interval(95.0, 96.2), 2, 95.7, 1.0) == stats.REPRODUCED
    assert stats.row_verdict(interval(94.5, 96.2), 2, 95.7, 1.0) == stats.INCONCLUSIVE  # mean inside, band not
    assert stats.row_verdict(interval(89.0, 91.0), 3, 95.7, 1.0) == "not reproduced (below)"
    assert stats.row_verdict(interval(97.0, 98.0), 3, 95.7, 1.0) == "not reproduced (above)"
    assert stats.row_verdict(interval(95.5, 95.6), 1, 95.7, 1.0) == stats.INCONCLUSIVE  # one seed: variance unknown
    assert stats.row_verdict(interval(90.0, 91.0), 2, None, 1.0) is None


def test_interval_accounts_for_test_rows_as_well_as_seeds():
    """Three identical seeds have no seed spread, yet 446 test rows leave about ±4.6 points of sampling error
    at 55% (2 x 1.96 x sqrt(.55 x .45 / 446) wide); the t-interval over seeds would be empty."""
    rng = torch.Generator().manual_seed(0)
    row = (torch.rand(446, generator=rng) < 0.55).numpy()
    correct = np.stack([row, row, row])
    interval = stats.accuracy_interval(correct, [100 * row.mean()] * 3, 446)
    assert interval["method"].startswith("seeds and test rows")
    assert 8.8 < interval["high"] - interval["low"] < 9.6
    binomial = stats.accuracy_interval(None, [100 * row.mean()] * 3, 446)  # older cells: the same two variances
    assert "binomial" in binomial["method"] and abs((binomial["high"] - binomial["low"]) - 9.2) < 0.3
    spread = stats.accuracy_interval(correct, [50.0, 55.0, 60.0], 446)  # values are not read where rows are
    assert spread == interval


def test_interval_widens_with_the_seeds_spread_by_a_t_quantile():
    """Seeds 5 points apart on the same rows: the seed part, at t with S - 1 degrees of freedom, dominates."""
    rng = np.random.default_rng(1)
    base = rng.random(4000) < 0.6
    correct = np.stack([base, base | (rng.random(4000) < 0.125)])  # about +5 points on the second seed
    interval = stats.accuracy_interval(correct, [], 4000)
    means = 100 * correct.mean(1)
    half_t = 12.706 * abs(means[1] - means[0]) / 2  # t(0.975, 1) x sd / sqrt 2
    assert half_t < (interval["high"] - interval["low"]) / 2 < 1.01 * half_t + 2.0


def test_paired_gain_pairs_seeds_and_rows_and_its_p_matches_its_interval():
    rng = np.random.default_rng(0)
    base = {s: rng.random(2000) < 0.80 for s in range(3)}
    se = {s: base[s] | (rng.random(2000) < 0.10) for s in range(3)}  # SE fixes about 2% of the rows
    accuracy = ({s: 100 * v.mean() for s, v in se.items()}, {s: 100 * v.mean() for s, v in base.items()})
    gain = stats.paired_gain(se, base, accuracy)
    assert gain["method"].startswith("seeds and test rows") and gain["ci95"][0] > 0 and gain["p_value"] < 0.01
    same = stats.paired_gain(base, base, (accuracy[1], accuracy[1]))
    assert same["ci95"] == (0.0, 0.0) and same["p_value"] == 1.0
    # the p-value is the level at which the interval reaches zero: below alpha exactly when 0 is outside
    for scale in (0.02, 0.05, 0.1, 0.3):
        noisy = {s: se[s] ^ (rng.random(2000) < scale) for s in range(3)}
        found = stats.paired_gain(noisy, base, ({s: 100 * v.mean() for s, v in noisy.items()}, accuracy[1]))
        assert (found["p_value"] < stats.ALPHA) == (found["ci95"][0] > 0 or found["ci95"][1] < 0)
    assert stats.magnitude_verdict({"ci95": (1.0, 2.0), "n": 3}, 2.5, 1.0) == "consistent"
    assert stats.magnitude_verdict({"ci95": (1.0, 2.0), "n": 3}, 9.0, 1.0) == "ours smaller"
    # one seed, as for a row: its interval covers the test rows alone, so no verdict and no test in Holm's family
    one = stats.paired_gain({0: se[0]}, {0: base[0]}, ({0: accuracy[0][0]}, {0: accuracy[1][0]}))
    assert one["n"] == 1 and one["ci95"][0] > 0 and one["p_value"] is None
    assert stats.direction_verdict(one, None) == stats.INCONCLUSIVE
    assert stats.magnitude_verdict(one, 2.0, 1.0) is None
    assert stats.holm([0.01, 0.04, None, 0.03]) == [0.03, 0.06, None, 0.06]


def test_one_decision_rule_both_ways():
    """The corrected p decides either direction; the sign says which. An interval below zero whose corrected p
    is not below alpha is no longer enough for `not reproduced`."""
    up, down = {"mean": 1.5, "n": 3}, {"mean": -1.5, "n": 3}
    assert stats.direction_verdict(up, 0.01) == stats.REPRODUCED
    assert stats.direction_verdict(down, 0.01) == stats.NOT_REPRODUCED
    assert stats.direction_verdict({**down, "ci95": (-3.0, -1.0)}, 0.2) == stats.INCONCLUSIVE
    assert stats.direction_verdict({**up, "ci95": (1.0, 2.0)}, 0.2) == stats.INCONCLUSIVE
    assert stats.direction_verdict({**down, "n": 1}, 0.001) == stats.INCONCLUSIVE


def test_older_claims_without_outcomes_use_the_seeds_alone():
    gain = stats.paired_gain({}, {}, ({0: 81.0, 1: 82.2, 2: 80.1}, {0: 80.0, 1: 81.0, 2: 79.0}))
    assert gain["n"] == 3 and gain["ci95"][0] > 0 and gain["p_value"] < 0.05 and "seeds alone" in gain["method"]
    low, high = stats.t_interval([1.0, 0.2, 1.1])  # the same as a t interval over the seeds' gains
    assert stats.paired_gain({}, {}, ({0: 1.0, 1: 0.2, 2: 1.1}, {0: 0.0, 1: 0.0, 2: 0.0}))["ci95"] == \
        pytest.approx((low, high))


def test_holdout_split_is_disjoint_seeded_and_sized():
    from sharens.execution.cell import holdout_split

    fit, held = holdout_split(1000, 0.1, seed=4)
    assert len(held) == 100 and len(fit) == 900
    assert not set(fit.tolist()) & set(held.tolist())
    assert torch.equal(held, holdout_split(1000, 0.1, seed=4)[1])
    assert not torch.equal(held, holdout_split(1000, 0.1, seed=5)[1])


def _rates(preset, total_steps):
    from sharens.train.loop import optimizer_for

    model = torch.nn.Linear(2, 2)
    optimizer, schedule = optimizer_for(model.parameters(), preset, total_steps)
    rates = []
    for _ in range(total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return optimizer, rates


def test_he_et_al_sgd_schedule_with_warmup():
    preset = Preset("resnet", 0.1, 0.0, "He et al.", optimizer="sgd", momentum=0.9, weight_decay=1e-4,
                    milestones=(0.5, 0.75), warmup_steps=2, warmup_lr=0.01)
    optimizer, rates = _rates(preset, 8)
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["momentum"] == 0.9 and optimizer.param_groups[0]["weight_decay"] == 1e-4
    expected = [0.01, 0.01, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    assert all(abs(a - b) < 1e-12 for a, b in zip(rates, expected, strict=True))


def test_exponential_schedule_ends_at_lr_min():
    _, rates = _rates(PRESETS["tuned"], 50)
    assert rates[0] == PRESETS["tuned"].lr0 and abs(rates[-1] - PRESETS["tuned"].lr_min) < 1e-9


def test_preset_config_names_only_what_differs_from_adam_defaults():
    """Stored cells are keyed by this dict: the Adam presets must keep their four fields."""
    assert set(PRESETS["tuned"].config()) == {"name", "lr0", "lr_min", "why"}
    sgd = Preset("s", 0.1, 0, "", optimizer="sgd", momentum=0.9, milestones=(0.5,))
    assert sgd.config()["milestones"] == (0.5,) and "warmup_steps" not in sgd.config()
    for bad in ({"optimizer": "rmsprop"}, {"milestones": (0.8, 0.5)}, {"milestones": (1.5,)}):
        try:
            Preset("bad", 0.1, 0.0, "", **bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} was accepted")


def test_augmentation_sees_every_batch_on_the_device_with_the_seeded_generator():
    seen = []

    def augment(batch, generator):
        seen.append((batch.shape, type(generator)))
        return batch + 0.0

    torch.manual_seed(0)
    model = SharingEnsemble(build_backbone("pyramid_dnn", 10, first_width=8, depth=2), 2, heads_per_tap=1)
    x, y = _task(n=256)
    train(model, x, y, preset=PRESETS["tuned"], epochs=2, batch_size=64, seed=0, augment=augment)
    assert seen == [((64, 10), torch.Generator)] * 8


def test_speed_options_train_the_same_model_on_cpu():
    """bf16 autocast and channels_last (what CUDA cells use) run through the same loop and still learn;
    fp32 on CPU records no options, so stored CPU cells keep their hashes."""
    assert Speed.for_device(torch.device("cpu")).config() == {}
    assert Speed.for_device(torch.device("cuda"), ["compile"]).config() == {
        "bf16": True, "channels_last": True, "compile": True}  # batched members act only on ensembles
    assert Speed.for_device(torch.device("cuda")).config(members=5) == {
        "bf16": True, "channels_last": True, "batched_members": True}
    assert Speed.for_device(torch.device("cpu"), ["batched_members"]).config(members=5, batchable=False) == {}
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (256, 3, 8, 8), generator=g, dtype=torch.uint8)
    y = (x[:, 0, :4].float().mean((1, 2)) > x[:, 0, 4:].float().mean((1, 2))).long()
    speed = Speed(bf16=True, channels_last=True)
    torch.manual_seed(0)
    model = SharingEnsemble(build_backbone("convnet", (3, 8, 8), layers=((8, 1), (8, 2))), 2, 2)
    result = train(model, x.float() / 255, y, preset=PRESETS["tuned"], epochs=10, batch_size=32, seed=0, speed=speed)
    assert result.diverged_at_step is None
    assert next(p for p in model.parameters() if p.dim() == 4).is_contiguous(memory_format=torch.channels_last)
    logits = predict_logits(model, x.float() / 255, speed=speed)
    assert logits.dtype == torch.float32 and (logits.argmax(-1)[:, -1] == y).float().mean() > 0.7


@pytest.mark.slow
def test_compiled_training_learns_like_the_eager_loop():
    """`--compile` wraps the forward pass in torch.compile (seconds to compile on a CPU); it learns the same task."""
    accuracy = {}
    for compile in (False, True):
        model, result, x, y = _fit(0, speed=Speed(compile=compile))
        assert result.diverged_at_step is None
        accuracy[compile] = (predict_logits(model, x).argmax(-1) == y[:, None]).float().mean().item()
    assert accuracy[True] > 0.9 and abs(accuracy[True] - accuracy[False]) < 0.05
