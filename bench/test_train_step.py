"""Train-step throughput of the image models: SE over its baseline, and our loop over a minimal one.

`nox -s bench` runs these with pytest-benchmark and `bench/summarize.py` turns the
timings of one run into ratios in `results/bench/`. Times are never asserted: a
ratio measured in one run on one machine is the result.

The three loops of a model are timed in paired rounds: each round runs our loop on
the baseline, our loop on SE and the minimal loop back to back, in an order that
rotates from round to round. A shared machine's slow spells last seconds to
minutes, so they hit all three of a round alike and cancel in its ratios; timing
each loop in its own benchmark, minutes apart, once put SE below its own baseline.
"""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from sharens.backbones import build_backbone
from sharens.ensemble import SharingEnsemble
from sharens.training import PRESETS, train

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BATCH = 128 if DEVICE.type == "cuda" else 32
STEPS = 50 if DEVICE.type == "cuda" else 16
ROUNDS = 9
LOOPS = ("baseline", "se", "minimal")
TABLE2_CNN = ((64, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (256, 2))
MODELS = {
    "table2_cnn": ("convnet", {"dims": 2, "layers": TABLE2_CNN}),
    "resnet56": ("cifar_resnet", {"n": 9}),
}


def make_model(name: str, se: bool) -> SharingEnsemble:
    torch.manual_seed(0)
    backbone_name, options = MODELS[name]
    backbone = build_backbone(backbone_name, (3, 32, 32), **options)
    model = SharingEnsemble(backbone, 10, 5) if se else SharingEnsemble.baseline(backbone, 10)
    return model.to(DEVICE)


@pytest.fixture(scope="module")
def batch_data():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(STEPS * BATCH, 3, 32, 32, generator=generator).to(DEVICE)
    y = torch.randint(0, 10, (STEPS * BATCH,), generator=generator).to(DEVICE)
    return x, y


def _sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def harness_epoch(model, x, y):
    """One epoch of `sharens.training.train` (shuffle, gather, loss, Adam, schedule, divergence check)."""
    train(model, x, y, preset=PRESETS["tuned"], epochs=1, batch_size=BATCH, seed=0)


def minimal_epoch(model, x, y):
    """The same model, tensors and fused Adam in the plainest loop PyTorch allows.

    Like `train`, each epoch is a run from a fresh optimizer, so both pay its first-step state.
    """
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=PRESETS["tuned"].lr0, fused=True)
    for i in range(STEPS):
        logits = model(x[i * BATCH : (i + 1) * BATCH])[:, 0]
        loss = F.cross_entropy(logits, y[i * BATCH : (i + 1) * BATCH])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _sync()


@pytest.mark.parametrize("name", MODELS)
def test_train_step(benchmark, batch_data, name):
    """Paired rounds of (our loop on baseline, our loop on SE, minimal loop on the baseline model)."""
    x, y = batch_data
    baseline, se, bare = make_model(name, False), make_model(name, True), make_model(name, False)
    loops = {"baseline": lambda: harness_epoch(baseline, x, y), "se": lambda: harness_epoch(se, x, y),
             "minimal": lambda: minimal_epoch(bare, x, y)}
    seconds = {loop: [] for loop in LOOPS}

    def paired_round():
        shift = len(seconds[LOOPS[0]]) % len(LOOPS)  # rounds run so far, the warm-up included
        for loop in LOOPS[shift:] + LOOPS[:shift]:
            _sync()
            start = time.perf_counter()
            loops[loop]()
            _sync()
            seconds[loop].append(time.perf_counter() - start)

    benchmark.pedantic(paired_round, rounds=ROUNDS, warmup_rounds=1)
    # the warm-up round is timed too: keep the measured rounds only
    benchmark.extra_info.update(device=str(DEVICE), batch=BATCH, steps=STEPS,
                                seconds={loop: s[-ROUNDS:] for loop, s in seconds.items()})
