"""Training throughput, as cells train: SE over its baseline, our loop over a minimal one, batched members.

`nox -s bench` runs these with pytest-benchmark and `bench/summarize.py` turns the
timings of one run into ratios in `results/bench/`. Times are never asserted: a
ratio measured in one run on one machine is the result.

Every model is the one a table's cell builds (`plan` -> `execute.build_model`), at
that table's batch size, on the first rows of its real data, with a cell's CPU
thread count. The loops of a model are timed in paired rounds: each round runs
them back to back, in an order that rotates from round to round. A shared
machine's slow spells last seconds to minutes, so they hit all loops of a round
alike and cancel in its ratios; timing each loop in its own benchmark, minutes
apart, once put SE below its own baseline.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from benchmarks import get_table
from sharens.data import load_dataset
from sharens.execution import timing
from sharens.execution.cell import DeviceData, build_model, fixed_threads, prepare
from sharens.suite.plan import CELL_THREADS, NetworkSpec, plan
from sharens.train.augment import get_augmentation
from sharens.train.loop import train
from sharens.train.members import train_members
from sharens.train.presets import Preset
from sharens.train.speed import Speed

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
ROUNDS = 9
# (table, data set, baseline row, SE row): the image models, at their tables' batch (128)
IMAGE_MODELS = {
    "table2_cnn": ("table3_cifar10", "cifar10", "Deep CNN", "Deep CNN+SE"),
    "resnet56": ("resnet_cifar10", "cifar10", "ResNet-56", "ResNet-56+SE"),
}
IMAGE_STEPS = 4 if DEVICE.type == "cpu" else 50
# (table, data set, independent-ensemble row): the small networks whose K members batch well
ENSEMBLES = {
    "semg_dnn_x5": ("table5_semg", "semg", "DNN x5 (independent)"),
    "letter_dnn_x5": ("table7_uci", "letter", "DNN x5 (independent)"),
}
ENSEMBLE_STEPS = 40


def cell(table_id: str, dataset: str, label: str, steps: int) -> tuple[NetworkSpec, DeviceData]:
    """A `full` cell's network spec, and its data set cut to the rows of `steps` batches (or all it has)."""
    table = get_table(table_id)
    specs = plan(table, table.profile("full"), 1, list(table.presets[:1]), [dataset], Speed.for_device(DEVICE))
    net = next(s.network for s in specs if s.row.label == label)
    return net, prepare(load_dataset(dataset), steps * net.batch_size, 8, DEVICE)


def our_loop(net: NetworkSpec, data: DeviceData, speed: Speed | None = None) -> Callable[[], None]:
    """One epoch of `sharens.train.loop.train` (shuffle, gather, loss, optimizer, schedule, curves) on a fresh
    model of the spec, as a cell runs it."""
    x, y = data.x(net.inputs)[0], data.y_train
    model = build_model(net, x, data.num_classes).to(DEVICE)
    speed = speed or Speed(**net.speed)
    return lambda: train(model, x, y, preset=Preset(**net.optimizer), epochs=1, batch_size=net.batch_size, seed=0,
                         augment=get_augmentation(net.augment), speed=speed)


def minimal_loop(net: NetworkSpec, data: DeviceData) -> Callable[[], None]:
    """The same model, tensors, augmentation and fused Adam in the plainest loop PyTorch allows (rows in order,
    no curves).

    Like `train`, each epoch is a run from a fresh optimizer, so both pay its first-step state."""
    x, y = data.x(net.inputs)[0], data.y_train
    model = build_model(net, x, data.num_classes).to(DEVICE)
    speed, augment = Speed(**net.speed), get_augmentation(net.augment)
    forward = speed.prepare(model)
    generator = torch.Generator(device=DEVICE).manual_seed(0)

    def epoch():
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=net.optimizer["lr0"], fused=True)
        for i in range(0, len(y) - net.batch_size + 1, net.batch_size):
            batch = x[i : i + net.batch_size] if augment is None else augment(x[i : i + net.batch_size], generator)
            with speed.autocast(DEVICE):
                logits = forward(speed.batch(batch))[:, 0].float()
            loss = F.cross_entropy(logits, y[i : i + net.batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return epoch


def member_loops(net: NetworkSpec, data: DeviceData) -> dict[str, Callable[[], None]]:
    """The K members of an independent ensemble, one after another and as one batched model."""
    x, y = data.x(net.inputs)[0], data.y_train
    seeds = [1000 * k for k in range(net.members)]
    sequential = [build_model(net, x, data.num_classes).to(DEVICE) for _ in seeds]
    batched = [build_model(net, x, data.num_classes).to(DEVICE) for _ in seeds]
    options = dict(preset=Preset(**net.optimizer), epochs=1, batch_size=net.batch_size)
    return {
        "sequential": lambda: [train(m, x, y, seed=s, **options) for m, s in zip(sequential, seeds, strict=True)],
        "batched": lambda: train_members(batched, x, y, seeds=seeds, **options),
    }


def paired_rounds(benchmark, loops: dict[str, Callable[[], None]], **info) -> None:
    """Time `loops` in paired rounds as the throughput claims are timed (`sharens.execution.timing`), at a
    cell's threads; pytest-benchmark times the whole measurement once."""
    seconds = {}

    def measured():
        with fixed_threads(CELL_THREADS):
            seconds.update(timing.paired_rounds({name: (loop,) for name, loop in loops.items()}, DEVICE, ROUNDS))

    benchmark.pedantic(measured, rounds=1, warmup_rounds=0)
    benchmark.extra_info.update(device=str(DEVICE), threads=CELL_THREADS,
                                seconds={name: s[0] for name, s in seconds.items()}, **info)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_se_over_baseline(benchmark, name):
    """Our loop on the baseline and on SE, the minimal loop on the baseline, and (on a CPU, where it is not
    the default) the baseline in channels_last layout."""
    table_id, dataset, baseline_row, se_row = IMAGE_MODELS[name]
    baseline, data = cell(table_id, dataset, baseline_row, IMAGE_STEPS)
    se, _ = cell(table_id, dataset, se_row, IMAGE_STEPS)
    loops = {"baseline": our_loop(baseline, data), "se": our_loop(se, data), "minimal": minimal_loop(baseline, data)}
    if DEVICE.type == "cpu":
        loops["channels_last"] = our_loop(baseline, data, Speed(channels_last=True))
    paired_rounds(benchmark, loops, kind="se_over_baseline", batch=baseline.batch_size,
                  steps=len(data.y_train) // baseline.batch_size)


@pytest.mark.parametrize("name", ENSEMBLES)
def test_batched_members(benchmark, name):
    """An independent ensemble's members trained one after another against all at once."""
    net, data = cell(*ENSEMBLES[name], ENSEMBLE_STEPS)
    paired_rounds(benchmark, member_loops(net, data), kind="members", batch=net.batch_size,
                  steps=len(data.y_train) // net.batch_size, members=net.members)
