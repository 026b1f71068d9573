"""Train-step throughput of the image models: SE over its baseline, and our loop over a minimal one.

`nox -s bench` runs these with pytest-benchmark and `bench/summarize.py` turns the
timings of one run into ratios in `results/bench/`. Times are never asserted: a
ratio measured in one run on one machine is the result.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sharens.backbones import build_backbone
from sharens.ensemble import SharingEnsemble
from sharens.training import PRESETS, train

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
BATCH = 128 if DEVICE.type == "cuda" else 32
STEPS = 50 if DEVICE.type == "cuda" else 16
ROUNDS = 7  # medians of 7: a shared 2-core CPU moved 3-round medians by 10%
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


@pytest.mark.parametrize("variant", ["baseline", "se"])
@pytest.mark.parametrize("name", MODELS)
def test_harness(benchmark, batch_data, name, variant):
    """One epoch of `sharens.training.train` (shuffle, gather, loss, Adam, schedule, divergence check)."""
    x, y = batch_data
    model = make_model(name, variant == "se")
    benchmark.extra_info.update(device=str(DEVICE), batch=BATCH, steps=STEPS)
    benchmark.pedantic(train, args=(model, x, y), kwargs={
        "preset": PRESETS["tuned"], "epochs": 1, "batch_size": BATCH, "seed": 0}, rounds=ROUNDS, warmup_rounds=1)


@pytest.mark.parametrize("name", MODELS)
def test_minimal_loop(benchmark, batch_data, name):
    """The same baseline model, tensors and fused Adam in the plainest loop PyTorch allows.

    Like `train`, each round is a run from a fresh optimizer, so both pay its first-step state.
    """
    x, y = batch_data
    model = make_model(name, se=False)
    model.train()

    def epoch():
        optimizer = torch.optim.Adam(model.parameters(), lr=PRESETS["tuned"].lr0, fused=True)
        for i in range(STEPS):
            logits = model(x[i * BATCH : (i + 1) * BATCH])[:, 0]
            loss = F.cross_entropy(logits, y[i * BATCH : (i + 1) * BATCH])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        _sync()

    benchmark.extra_info.update(device=str(DEVICE), batch=BATCH, steps=STEPS)
    benchmark.pedantic(epoch, rounds=ROUNDS, warmup_rounds=1)
