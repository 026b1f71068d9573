"""What the pending cells of a plan will cost on this device: a small cost model, calibrated here and kept.

A network cell trains at most `epochs` passes over its fitted rows (a stopping rule may end it sooner, so
the estimate is an upper bound), evaluates its held-out rows every epoch and its test rows once, for each
member. Its rate (training samples per second) is measured once per model and device by timing a few steps
of the cell's own training loop on its own data. A scikit-learn cell is timed on a slice of its rows and
scaled to the full size by how its estimator's fit grows with rows (`GROWTH`). Measurements are kept in
`costs.json` in the cache dir (this machine's), keyed by device, so a second dry run is instant.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from sharens import provenance
from sharens.atomic import write_json
from sharens.classic import build_classic
from sharens.data import cache_dir
from sharens.execute import DeviceData, build_model, fixed_threads
from sharens.flops import flops_per_sample
from sharens.plan import CellSpec
from sharens.training import Preset, Speed, train

COSTS_FILE = "costs.json"
CPU_BUDGET_S = 12 * 3600  # what `reproduce --profile auto` gives one table on a CPU: a night
CALIBRATION_STEPS = 2  # timed training steps per model, after one warm-up step
CLASSIC_SLICE = 1000  # training rows a scikit-learn estimator is timed on
EVAL_COST = 1 / 3  # a forward pass costs about a third of a training step (forward + backward)
# how the fit time of each scikit-learn estimator grows with its training rows (exponent)
GROWTH = {"random_forest": 1.0, "logistic_regression": 1.0, "svm_rbf": 2.0, "svm_linear": 1.0,
          "svm_linear_sgd": 1.0}
# what a network's training rate does not depend on, or hardly (SE's heads cost a few % of the backbone: one
# timing serves the baseline, SE and DSN of a backbone)
_RATE_FREE = ("epochs", "members", "vote", "holdout", "patience", "stop_on", "probe_gradients", "heads_per_tap",
              "tap_weights")


class CostModel:
    """Seconds per cell on one device; measurements kept in a JSON file beside the results."""

    def __init__(self, device: torch.device, threads_per_cell: int, path: Path | None = None):
        self.path, self.device = Path(path) if path else cache_dir() / COSTS_FILE, device
        self.device_name = provenance.device_name(device, threads_per_cell)
        try:
            self.kept = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.kept = {}
        self.measured = self.kept.setdefault(self.device_name, {})

    def seconds(self, spec: CellSpec, data: DeviceData, epochs: float | None = None) -> float:
        """Estimated wall seconds of `spec` on this device, training `epochs` (default: the spec's, which under
        a stopping rule is a cap, so the estimate is an upper bound)."""
        n_train, n_test = len(data.y_train), len(data.y_test)
        if spec.classic is not None:
            return self._measure(_classic_key(spec), lambda: _classic_seconds(spec, data))
        net = spec.network
        rate, setup = self._measure(_network_key(spec), lambda: _network_rate(spec, data, self.device))
        held = round(n_train * net.holdout)
        per_member = (epochs or net.epochs) * (n_train - held + EVAL_COST * held) + EVAL_COST * n_test
        return net.members * (setup + per_member / rate)

    def save(self) -> None:
        write_json(self.path, self.kept)

    def _measure(self, key: str, measure):
        if key not in self.measured:
            self.measured[key] = measure()
        return self.measured[key]


def _digest(what: dict) -> str:
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _network_key(spec: CellSpec) -> str:
    net = {k: v for k, v in asdict(spec.network).items() if k not in _RATE_FREE}
    return "network/2 " + _digest({"dataset": spec.dataset, "threads": spec.threads, **net})


def _classic_key(spec: CellSpec) -> str:
    return "classic " + _digest({"dataset": spec.dataset, "rows": spec.train_subset, "threads": spec.threads,
                                 **asdict(spec.classic)})


def _network_rate(spec: CellSpec, data: DeviceData, device: torch.device) -> tuple[float, float]:
    """(training samples per second of the cell's model, over a few steps of its own training loop; seconds
    a cell spends on it besides training: building it and counting its FLOPs)."""
    net = spec.network
    x, y = data.x(net.inputs)[0], data.y_train
    batch = min(net.batch_size, len(y))
    with fixed_threads(spec.threads):
        for _ in range(2):  # the second time: without the first call's one-off costs
            start = time.perf_counter()
            torch.manual_seed(spec.seed)
            model = build_model(net, x, data.num_classes).to(device)
            flops_per_sample(model, data.x(net.inputs)[1])
            setup = time.perf_counter() - start
        options = dict(preset=Preset(**net.optimizer), epochs=1, batch_size=batch, seed=spec.seed,
                       speed=Speed(**net.speed))
        train(model, x[:batch], y[:batch], **options)  # warm-up: first-call allocations and kernel choices
        steps = min(CALIBRATION_STEPS, len(y) // batch)
        return train(model, x[: steps * batch], y[: steps * batch], **options).samples_per_s, setup


def _classic_seconds(spec: CellSpec, data: DeviceData) -> float:
    """The fit on all rows, from a timed fit on a slice, scaled by the estimator's growth in rows."""
    x, _ = data.numpy_inputs[spec.classic.inputs]
    rows = np.random.default_rng(0).permutation(len(x))[:CLASSIC_SLICE]  # a random slice: files sort by class
    estimator = build_classic(spec.classic.estimator, spec.seed, spec.classic.forest_trees, spec.classic.max_iter,
                              spec.threads)
    start = time.perf_counter()
    with warnings.catch_warnings():  # a fit on a slice may not converge; only its time matters here
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(x[rows].reshape(len(rows), -1).astype("float32"), data.y_train_np[rows])
    return (time.perf_counter() - start) * (len(x) / len(rows)) ** GROWTH[spec.classic.estimator]


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
