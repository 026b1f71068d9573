"""What the pending cells of a plan will cost on this device, in seconds, without training anything.

A network cell trains at most `epochs` passes over its fitted rows (a stopping rule may end it sooner, so the
estimate is an upper bound), evaluates its held-out rows every epoch and its test rows once, for each member.
Its rate (training samples per second) comes from, in order:

1. the finished cells of the same row on this device (their measured rate): the estimate sharpens as cells land;
2. its forward FLOPs per sample (counted on a model built for the data's shape, `sharens.data.shapes`, never on
   the data itself), through this device's calibration: seconds per sample = per-step overhead / batch size +
   `TRAIN_FLOPS` x FLOPs / FLOP rate, both measured once per device on two small reference networks.

A scikit-learn cell takes its row's finished cells on this device, else a calibration fit of its estimator on a
small synthetic problem, scaled to the cell's rows (by how the estimator's fit grows, `GROWTH`) and features.
Calibrations and FLOP counts are kept in `costs.json` in the cache dir, so only a new device or model pays for
them (about a second each). `bench/dry_run.py` measures how far these estimates fall from the cells' real times.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from sharens import provenance
from sharens.atomic import write_json
from sharens.data import cache_dir
from sharens.data.shapes import DataShape
from sharens.execution.cell import build_model, fixed_threads
from sharens.model.backbones import build_backbone
from sharens.model.classic import build_classic
from sharens.model.ensemble import SharingEnsemble
from sharens.model.flops import flops_per_sample
from sharens.suite.plan import CellSpec
from sharens.train.loop import train
from sharens.train.presets import Preset
from sharens.train.speed import Speed

COSTS_FILE = "costs.json"
VERSION = 3  # a kept file of another version is measured afresh
CPU_BUDGET_S = 12 * 3600  # what `reproduce --profile auto` gives one table on a CPU: a night
EVAL_COST = 1 / 3  # a forward pass costs about a third of a training step (forward + backward)
TRAIN_FLOPS = 3  # a training step's FLOPs per sample, in forward passes
# the calibration's reference networks: one whose step is nearly all overhead, one whose step is nearly all FLOPs
OVERHEAD_NET = dict(name="mlp", shape=(8,), options=dict(widths=(8,)), batch=128, steps=8)
FLOP_NET = dict(name="convnet", shape=(3, 32, 32), options=dict(dims=2, layers=((32, 1), (64, 2), (64, 2))),
                batch=64, steps=4)
CLASSIC_ROWS, CLASSIC_FEATURES, CLASSIC_CLASSES = 500, 32, 10  # the synthetic problem an estimator is timed on
# how the fit time of each scikit-learn estimator grows with its training rows (exponent)
GROWTH = {"random_forest": 1.0, "logistic_regression": 1.0, "svm_rbf": 2.0, "svm_linear": 1.0,
          "svm_linear_sgd": 1.0}


class CostModel:
    """Seconds per cell on one device: measured rates of finished cells, else FLOPs through a calibration.

    `finished` are the stored records of the plan; those run on this device refine the estimates of their rows.
    """

    def __init__(self, device: torch.device, threads_per_cell: int, path: Path | None = None,
                 finished: list[dict] = ()):
        self.path = Path(path) if path else cache_dir() / COSTS_FILE
        self.device, self.threads = device, threads_per_cell
        self.device_name = provenance.device_name(device, threads_per_cell)
        try:
            self.kept = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.kept = {}
        if self.kept.get("version") != VERSION:
            self.kept = {"version": VERSION}
        self.flops = self.kept.setdefault("flops", {})  # model key -> forward FLOPs per sample (any device)
        self.calibration = self.kept.setdefault("devices", {}).setdefault(self.device_name, {})
        self.rows = _measured_rows(finished, self.device_name)

    def seconds(self, spec: CellSpec, shape: DataShape, epochs: float | None = None) -> float:
        """Estimated wall seconds of `spec` on data of `shape` (the data set's, before the spec's slices),
        training `epochs` (default: the spec's, which under a stopping rule is a cap: an upper bound)."""
        shape = shape.sliced(spec.train_subset, spec.test_subset)
        measured = self.rows.get(_row_key(spec))
        if spec.classic is not None:
            return measured if measured is not None else self._classic_seconds(spec, shape)
        net = spec.network
        rate = measured if measured is not None else self._network_rate(spec, shape)
        held = round(shape.n_train * net.holdout)
        per_member = (epochs or net.epochs) * (shape.n_train - held + EVAL_COST * held) + EVAL_COST * shape.n_test
        return net.members * per_member / rate

    def save(self) -> None:
        write_json(self.path, self.kept)

    def _network_rate(self, spec: CellSpec, shape: DataShape) -> float:
        """Training samples per second from the model's FLOPs and this device's calibration."""
        overhead, flop_rate = self._calibrated("network", lambda: _calibrate_network(self.device, self.threads))
        key = _model_key(spec, shape)
        if key not in self.flops:
            example = torch.from_numpy(shape.example(spec.network.inputs))
            with fixed_threads(self.threads):
                torch.manual_seed(0)
                self.flops[key] = flops_per_sample(build_model(spec.network, example, shape.num_classes), example) or 0
        batch = min(spec.network.batch_size, shape.n_train)
        return 1 / (overhead / batch + TRAIN_FLOPS * self.flops[key] / flop_rate)

    def _classic_seconds(self, spec: CellSpec, shape: DataShape) -> float:
        """The calibration fit of the estimator, scaled to the cell's rows and features."""
        options = asdict(spec.classic) | {"threads": spec.threads}
        fit = self._calibrated("classic " + _digest(options), lambda: _calibrate_classic(spec))
        features = int(np.prod(shape.inputs[spec.classic.inputs][0]))
        rows = (shape.n_train / CLASSIC_ROWS) ** GROWTH[spec.classic.estimator]
        return fit * rows * max(1.0, features / CLASSIC_FEATURES)

    def _calibrated(self, what: str, measure):
        if what not in self.calibration:
            self.calibration[what] = measure()
        return self.calibration[what]


def _digest(what: dict) -> str:
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _model_key(spec: CellSpec, shape: DataShape) -> str:
    """What a model's FLOPs per sample depend on: its backbone, heads and input."""
    net = spec.network
    return _digest({"backbone": net.backbone, "options": net.options, "heads": net.heads_per_tap,
                    "weights": net.tap_weights, "input": shape.inputs[net.inputs], "classes": shape.num_classes})


def _row_key(spec: CellSpec | dict) -> tuple:
    """The cells whose cost is the same but for their seed: one row of one plan."""
    s = spec.as_dict() if isinstance(spec, CellSpec) else spec
    return s["table"], s["profile"], s["dataset"], s["row"]["label"], s["preset"], s["train_subset"], s["test_subset"]


def _measured_rows(records: list[dict], device_name: str) -> dict[tuple, float]:
    """Row -> the median measured cost of its finished cells on this device: training samples per second for a
    network, fit seconds for a scikit-learn estimator."""
    measured: dict[tuple, list[float]] = {}
    for record in records:
        if (record.get("provenance") or {}).get("device") != device_name or not record.get("spec"):
            continue
        value = record.get("train_samples_per_s") if record["spec"].get("network") else record.get("train_seconds")
        if value:
            measured.setdefault(_row_key(record["spec"]), []).append(value)
    return {row: statistics.median(values) for row, values in measured.items()}


def _step_seconds(net: dict, device: torch.device) -> tuple[float, float]:
    """(seconds per training sample of a reference network, its forward FLOPs per sample)."""
    x = torch.randn(net["batch"] * net["steps"], *net["shape"], device=device)
    y = torch.randint(0, 10, (len(x),), device=device)
    torch.manual_seed(0)
    model = SharingEnsemble.baseline(build_backbone(net["name"], net["shape"], **net["options"]), 10).to(device)
    flops = flops_per_sample(model, x) or 0.0
    options = dict(preset=Preset(name="calibration", lr0=1e-3, lr_min=1e-5, why="timing only"), epochs=1,
                   batch_size=net["batch"], seed=0, speed=Speed.for_device(device))
    train(model, x[: net["batch"]], y[: net["batch"]], **options)  # warm-up: first-call allocations
    start = time.perf_counter()
    train(model, x, y, **options)
    return (time.perf_counter() - start) / len(x), flops


def _calibrate_network(device: torch.device, threads: int) -> tuple[float, float]:
    """(per-step overhead in seconds, FLOPs per second) of this device, from two reference networks."""
    with fixed_threads(threads):
        small, _ = _step_seconds(OVERHEAD_NET, device)
        large, flops = _step_seconds(FLOP_NET, device)
    overhead = small * OVERHEAD_NET["batch"]
    return overhead, TRAIN_FLOPS * flops / max(large - overhead / FLOP_NET["batch"], large / 10)


def _calibrate_classic(spec: CellSpec) -> float:
    """Seconds the spec's estimator takes to fit the synthetic calibration problem."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((CLASSIC_ROWS, CLASSIC_FEATURES)).astype("float32")
    y = rng.integers(0, CLASSIC_CLASSES, CLASSIC_ROWS)
    estimator = build_classic(spec.classic.estimator, 0, spec.classic.forest_trees, spec.classic.max_iter,
                              spec.threads)
    with fixed_threads(spec.threads), warnings.catch_warnings():  # only the fit's time matters here
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        estimator.fit(x, y)
        return time.perf_counter() - start


def epochs_used(records: list[dict]) -> dict[tuple[str, str], float]:
    """(data set, pair) -> the median share of its epoch cap that finished cells under a stopping rule ran:
    what the pending cells of the same pair can be expected to run."""
    shares: dict[tuple[str, str], list[float]] = {}
    for record in records:
        network = (record.get("spec") or {}).get("network")
        if network and network.get("patience") and record.get("epoch_loss"):
            shares.setdefault((record["dataset"], record["pair"]), []).append(
                len(record["epoch_loss"]) / network["epochs"])
    return {key: sorted(v)[len(v) // 2] for key, v in shares.items()}
