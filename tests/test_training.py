"""The training loop: determinism, learning at all, divergence detection; statistics and verdicts."""

import torch

from sharens import stats
from sharens.backbones import build_backbone
from sharens.ensemble import SharingEnsemble
from sharens.training import FP32, PRESETS, Preset, Speed, predict_logits, train


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
    import sharens.training

    monkeypatch.setattr(sharens.training, "EXPLODED_LOSS", 1.0)
    model, result, _, _ = _fit(0)  # 6 heads, CE near ln 2 each at the start
    assert len(model.head_names) == 6 and result.diverged_at_step is None
    monkeypatch.setattr(sharens.training, "EXPLODED_LOSS", 0.05)  # below any CE this early
    assert _fit(0)[1].diverged_at_step == 0


def test_summary_and_t_interval():
    s = stats.summarize([1.0, 2.0, 3.0])
    assert s == {"mean": 2.0, "std": 1.0, "n": 3, "values": [1.0, 2.0, 3.0]}
    low, high = stats.t_interval([1.0, 2.0, 3.0])
    assert abs(high - 2.0 - 4.302652729911275 / 3**0.5) < 1e-9 and low < 2.0
    assert stats.t_interval([1.0]) is None


def test_row_verdicts():
    assert stats.row_verdict([95.0, 95.4], 95.7, 1.0) == stats.REPRODUCED
    assert stats.row_verdict([90.0, 90.1, 90.2], 95.7, 1.0) == stats.NOT_REPRODUCED
    assert stats.row_verdict([90.0, 99.0], 95.7, 1.0) == stats.INCONCLUSIVE  # too spread out
    assert stats.row_verdict([90.0], 95.7, 1.0) == stats.INCONCLUSIVE  # one seed cannot rule out
    assert stats.row_verdict([90.0], None, 1.0) is None


def test_claim_verdicts_on_paired_seeds():
    base = {0: 80.0, 1: 81.0, 2: 79.0}
    better = stats.paired_difference({0: 81.0, 1: 82.2, 2: 80.1}, base)
    assert better["n"] == 3 and better["ci95"][0] > 0
    assert stats.claim_verdict(better, 1.2, 1.0) == stats.REPRODUCED
    worse = stats.paired_difference({0: 79.0, 1: 79.8, 2: 78.1}, base)
    assert stats.claim_verdict(worse, 1.2, 1.0) == stats.NOT_REPRODUCED
    noisy = stats.paired_difference({0: 83.0, 1: 78.0, 2: 80.0}, base)
    assert stats.claim_verdict(noisy, 1.2, 1.0) == stats.INCONCLUSIVE
    # Only seeds both sides have are paired.
    assert stats.paired_difference({0: 1.0, 5: 2.0}, base)["n"] == 1


def test_holdout_split_is_disjoint_seeded_and_sized():
    from sharens.execute import holdout_split

    fit, held = holdout_split(1000, 0.1, seed=4)
    assert len(held) == 100 and len(fit) == 900
    assert not set(fit.tolist()) & set(held.tolist())
    assert torch.equal(held, holdout_split(1000, 0.1, seed=4)[1])
    assert not torch.equal(held, holdout_split(1000, 0.1, seed=5)[1])


def _rates(preset, total_steps):
    from sharens.training import _optimizer

    model = torch.nn.Linear(2, 2)
    optimizer, schedule = _optimizer(model, preset, total_steps)
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
    assert Speed.for_device(torch.device("cuda"), compile=True).config() == {
        "bf16": True, "channels_last": True, "compile": True}
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


def test_compiled_training_learns_like_the_eager_loop():
    """`--compile` wraps the forward pass in torch.compile (seconds to compile on a CPU); it learns the same task."""
    accuracy = {}
    for compile in (False, True):
        model, result, x, y = _fit(0, speed=Speed(compile=compile))
        assert result.diverged_at_step is None
        accuracy[compile] = (predict_logits(model, x).argmax(-1) == y[:, None]).float().mean().item()
    assert accuracy[True] > 0.9 and abs(accuracy[True] - accuracy[False]) < 0.05
