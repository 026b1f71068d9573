"""Step times of a pair's networks, in paired rounds: what `sharens.judge.throughput` judges (its docstring says
how)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch

from sharens import provenance
from sharens.execution.cell import DeviceData, build_model, fixed_threads
from sharens.judge.throughput import METHOD, ROUND_SECONDS, ROUNDS
from sharens.model.flops import flops_per_sample
from sharens.suite.plan import CELL_THREADS, CellSpec
from sharens.train.augment import get_augmentation
from sharens.train.loop import predict_logits, sync_device, train
from sharens.train.members import train_members
from sharens.train.presets import Preset
from sharens.train.speed import Speed

MAX_STEPS = 64


def _loops(spec: CellSpec, data: DeviceData, steps: int, device: torch.device) -> tuple[Callable, Callable, float]:
    """(`steps` training steps as the cell trains, a prediction over the same rows, FLOPs per sample): on the
    first rows of the cell's data, in as many epochs over them as `steps` needs."""
    net = spec.network
    x, y = data.x(net.inputs)[0], data.y_train
    batches = min(len(y) // net.batch_size, steps)
    rows = batches * net.batch_size if batches else len(y)  # fewer rows than a batch: one short batch an epoch
    x, y, epochs = x[:rows], y[:rows], math.ceil(steps / max(batches, 1))
    speed, preset = Speed(**net.speed), Preset(**net.optimizer)
    options = dict(preset=preset, epochs=epochs, batch_size=net.batch_size, augment=get_augmentation(net.augment),
                   speed=speed)
    models = [build_model(net, x, data.num_classes).to(device) for _ in range(net.members)]
    if net.members > 1 and speed.batched_members:
        seeds = [1000 * k for k in range(net.members)]
        # a cell hands train_members fresh modules (training mode); a prediction round left these in eval mode
        fit = lambda: train_members([m.train() for m in models], x, y, seeds=seeds, **options)  # noqa: E731
    else:
        fit = lambda: [train(m, x, y, seed=1000 * k, **options) for k, m in enumerate(models)]  # noqa: E731
    predict = lambda: [predict_logits(m, x, speed=speed) for m in models for _ in range(epochs)]  # noqa: E731
    flops = flops_per_sample(models[0], x[:2])
    return fit, predict, (flops * net.members if flops else None)


def _timed(fn: Callable, device: torch.device) -> float:
    sync_device(device)
    start = time.perf_counter()
    fn()
    sync_device(device)
    return time.perf_counter() - start


def paired_rounds(loops: dict[str, Sequence[Callable]], device: torch.device, rounds: int = ROUNDS) -> dict:
    """{name: one list of seconds per phase} of `loops` (name -> its phases, timed one by one), over `rounds`
    rounds after a warm-up one that is not kept. Each round runs every name back to back, starting one later
    than the round before, so a shared machine's slow spells fall on every name alike and cancel in ratios."""
    names = list(loops)
    seconds = {name: [[] for _ in phases] for name, phases in loops.items()}
    for r in range(rounds + 1):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            for k, phase in enumerate(loops[name]):
                elapsed = _timed(phase, device)
                if r:
                    seconds[name][k].append(elapsed)
    return seconds


def measure(specs: dict[str, tuple[CellSpec, str]], data: DeviceData, device: torch.device,
            rounds: int = ROUNDS) -> dict:
    """Time the training and prediction of every variant of one pair in paired rounds (see the docstring)."""
    baseline = specs["baseline"][0].network
    with fixed_threads(CELL_THREADS):
        one, _, _ = _loops(specs["baseline"][0], data, 2, device)
        step = _timed(one, device) / 2  # the first run pays warm-up costs too: a safe upper bound
        steps = max(1, min(MAX_STEPS, math.ceil(ROUND_SECONDS / max(step, 1e-6))))
        loops = {variant: _loops(spec, data, steps, device) for variant, (spec, _) in specs.items()}
        seconds = paired_rounds({v: (fit, predict) for v, (fit, predict, _) in loops.items()}, device, rounds)
    return {"device": provenance.device_name(device, CELL_THREADS), "method": METHOD, "rounds": rounds,
            "steps_per_round": steps, "batch_size": baseline.batch_size,
            "variants": {v: {"train_seconds": seconds[v][0], "predict_seconds": seconds[v][1],
                             "flops_per_sample": loops[v][2], "members": specs[v][0].network.members,
                             "cell_key": specs[v][1]} for v in loops}}
