"""Run one cell: its spec and its data in, its record and its per-row outcomes out.

`run_cell` reads only the `CellSpec` (see `sharens.suite.plan`) and the prepared
data; it never looks at a table or a profile, so any process that can unpickle
a spec can run it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from sharens import provenance
from sharens.data import Dataset
from sharens.model.analysis import analyse
from sharens.model.backbones import CenteredImages, build_backbone
from sharens.model.classic import build_classic, fit_classic
from sharens.model.diagnostics import first_layer_gradient_norm
from sharens.model.ensemble import SharingEnsemble, tap_of
from sharens.model.evaluation import describe_outcomes, evaluate_network, evaluate_predictions
from sharens.model.flops import tap_flops
from sharens.model.voting import VOTES, Ballot, head_accuracies
from sharens.suite.health import class_prior
from sharens.suite.plan import CellSpec, NetworkSpec
from sharens.train.augment import get_augmentation
from sharens.train.loop import TrainResult, predict_logits, train
from sharens.train.members import train_members
from sharens.train.presets import Preset
from sharens.train.speed import Speed

SUBSET_SEED = 0  # smoke/quick slices are the same for every seed and model


@dataclass
class DeviceData:
    """One data set's split, possibly sliced: every input view as tensors on the device.

    `inputs[view]` = (x_train, x_test); view None is the data set's default input.
    scikit-learn models read the numpy arrays in `numpy_inputs`.
    """

    name: str
    inputs: dict[str | None, tuple[torch.Tensor, torch.Tensor]]
    y_train: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    numpy_inputs: dict[str | None, tuple[np.ndarray, np.ndarray]]
    y_train_np: np.ndarray
    y_test_np: np.ndarray
    info: dict
    subsets: tuple[int | None, int | None]  # the (train, test) slices it was cut to, as a spec names them

    def x(self, view: str | None) -> tuple[torch.Tensor, torch.Tensor]:
        if view not in self.inputs:
            raise ValueError(f"{self.name} has no input view {view!r}; it has {sorted(map(str, self.inputs))}")
        return self.inputs[view]


def _slice(n: int, keep: int | None) -> np.ndarray:
    if keep is None or keep >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(SUBSET_SEED).permutation(n)[:keep])


def prepare(dataset: Dataset, train_subset: int | None, test_subset: int | None,
            device: torch.device) -> DeviceData:
    """The data set on `device`, cut to fixed random slices of `train_subset` / `test_subset` rows."""
    tr, te = _slice(len(dataset.y_train), train_subset), _slice(len(dataset.y_test), test_subset)

    def to_device(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    numpy_inputs = {view: (train[tr], test[te])
                    for view, (train, test) in {None: dataset.inputs(), **dataset.views}.items()}
    inputs = {view: (to_device(a), to_device(b)) for view, (a, b) in numpy_inputs.items()}
    y_train, y_test = dataset.y_train[tr], dataset.y_test[te]
    info = {**dataset.info, "n_train": len(tr), "n_test": len(te)}
    return DeviceData(dataset.name, inputs, to_device(y_train), to_device(y_test), len(dataset.classes),
                      numpy_inputs, y_train, y_test, info, (train_subset, test_subset))


@contextmanager
def fixed_threads(n: int):
    """torch's intra-op threads, and the BLAS and OpenMP pools numpy and scikit-learn call, fixed for the block:
    the count changes CPU sums (a logistic regression's hundreds of L-BFGS steps carry such a change into its
    predictions), so a spec fixes it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(before)


CellResult = tuple[dict, dict[str, np.ndarray]]  # a cell's record and its per-row outcomes


def run_cell(spec: CellSpec, data: DeviceData, device: torch.device, checkpoint: Path | None = None) -> CellResult:
    """Train and evaluate one cell: (its full record, its per-row outcomes; empty if it diverged)."""
    return run_cells([spec], data, device, checkpoint)[0]


def run_cells(specs: list[CellSpec], data: DeviceData, device: torch.device,
              checkpoint: Path | None = None) -> list[CellResult]:
    """Train and evaluate cells that run together: one cell, or the seeds of a cell group (cells whose specs
    differ only in their seed and ask for `batched_seeds`) trained as one batched model. One (record, outcomes)
    per spec; the group's wall time is split evenly, and each record names the seeds it trained with.

    With `checkpoint` (a path less its suffix), a network that trains alone saves its state between epochs beside
    it, one file per member seed, and resumes from it (`loop.train`); batched and snapshot runs do not."""
    spec = specs[0]
    if (data.name, data.subsets) != (spec.dataset, (spec.train_subset, spec.test_subset)):
        raise ValueError(f"the cell wants {spec.dataset} cut to {(spec.train_subset, spec.test_subset)}, "
                         f"but was given {data.name} cut to {data.subsets}")
    if len(specs) > 1 and (seed_group(spec) is None or any(seed_group(o) != seed_group(spec) for o in specs[1:])):
        raise ValueError("cells trained together must differ only in their seed, and ask for batched_seeds")
    started = datetime.now(UTC).isoformat(timespec="seconds")
    start = time.perf_counter()
    with fixed_threads(spec.threads):
        torch.use_deterministic_algorithms(True, warn_only=True)
        results = [_classic_cell(spec, data)] if spec.classic is not None else _network_cells(specs, data, checkpoint)
    wall_seconds = (time.perf_counter() - start) / len(specs)
    cells = []
    for spec, (result, outcomes) in zip(specs, results, strict=True):
        record = {
            "table": spec.table, "dataset": spec.dataset, "pair": spec.row.pair, "variant": spec.row.variant,
            "model": spec.row.label, "preset": spec.preset, "seed": spec.seed, "profile": spec.profile,
            "n_train": data.info["n_train"], "n_test": data.info["n_test"], "data": data.info,
            "spec": spec.as_dict(),
            **result,
            "provenance": {
                **provenance.environment(), "device": provenance.device_name(device, spec.threads),
                "started_utc": started, "wall_seconds": wall_seconds,
            },
        }
        if len(specs) > 1:
            record["provenance"]["trained_with_seeds"] = [other.seed for other in specs]
        if outcomes:
            record["outcomes"] = describe_outcomes(outcomes)
        cells.append((record, outcomes))
    return cells


def seed_group(spec: CellSpec) -> str | None:
    """What the cells that may train together as one batched model share (the same work but for the seed, asking
    for batched_seeds); None for a cell that trains alone."""
    if spec.network is None or not spec.network.speed.get("batched_seeds"):
        return None
    return json.dumps(dataclasses.replace(spec, seed=0).as_dict(), sort_keys=True, default=str)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass
class Trained:
    model: SharingEnsemble
    result: TrainResult
    test_logits: torch.Tensor
    eval_seconds: float
    heldout_logits: torch.Tensor | None  # on the held-out train rows, if the cell holds some out
    gradient_norms: dict[str, float] | None = None


def build_model(net: NetworkSpec, x: torch.Tensor, num_classes: int) -> SharingEnsemble:
    """The spec's network for inputs like `x`; uint8 images are scaled and centred inside the model."""
    backbone = build_backbone(net.backbone, x.shape[1:], **net.options)
    if x.dtype == torch.uint8:
        backbone = CenteredImages.around(backbone, x)
    if net.heads_per_tap is None:
        return SharingEnsemble.baseline(backbone, num_classes)
    return SharingEnsemble(backbone, num_classes, net.heads_per_tap, tap_weights=net.tap_weights)


def _seeded_model(net: NetworkSpec, x: torch.Tensor, num_classes: int, seed: int) -> SharingEnsemble:
    torch.manual_seed(seed)
    return build_model(net, x, num_classes).to(x.device)


def _test_logits(model: SharingEnsemble, x_test: torch.Tensor, speed: Speed) -> tuple[torch.Tensor, float]:
    """(logits of every head on the test rows, seconds they took)."""
    start = time.perf_counter()
    logits = predict_logits(model, x_test, speed=speed)
    if x_test.device.type == "cuda":
        torch.cuda.synchronize()
    return logits, time.perf_counter() - start


def _heldout_logits(model: SharingEnsemble, x_held: torch.Tensor | None, speed: Speed) -> torch.Tensor | None:
    return None if x_held is None else predict_logits(model, x_held, speed=speed)


def _gradient_probe(net: NetworkSpec, model: SharingEnsemble, x: torch.Tensor, y: torch.Tensor):
    """The first layer's gradient norm on a fixed batch of train rows, measured on a copy (so the probe's
    batch-norm update does not touch the model); None unless the spec asks for it."""
    if not net.probe_gradients:
        return None
    return lambda: first_layer_gradient_norm(copy.deepcopy(model), x[: net.batch_size], y[: net.batch_size])


def _fit_options(net: NetworkSpec, **changes) -> dict:
    """How the spec says to train, as `train` and `train_members` take it (`changes` override)."""
    return {"preset": Preset(**net.optimizer), "epochs": net.epochs, "batch_size": net.batch_size,
            "augment": get_augmentation(net.augment), "speed": Speed(**net.speed), "patience": net.patience,
            "stop_on": net.stop_on} | changes


def _train_one(net: NetworkSpec, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, num_classes: int,
               seed: int, desc: str, heldout: tuple[torch.Tensor, torch.Tensor] | None,
               checkpoint: Path | None) -> Trained:
    model = _seeded_model(net, x, num_classes, seed)
    speed = Speed(**net.speed)
    probe = _gradient_probe(net, model, x, y)
    norms = {"init": probe(), "head_weight": float(model.head_weights.sum())} if probe else None
    result = train(model, x, y, **_fit_options(net), seed=seed, desc=desc, heldout=heldout,
                   checkpoint=None if checkpoint is None else checkpoint.with_name(f"{checkpoint.name}.seed{seed}.pt"))
    if norms is not None and result.diverged_at_step is None:
        norms["trained"] = probe()
    return Trained(model, result, *_test_logits(model, x_test, speed),
                   _heldout_logits(model, None if heldout is None else heldout[0], speed), norms)


def _train_batched(net: NetworkSpec, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, num_classes: int,
                   seeds: list[list[int]], splits: list[Split], desc: str) -> list[list[Trained]]:
    """Every member of every cell of a group (`seeds[c]`: cell c's member seeds; `splits[c]`: its rows), trained
    at once as one batched model (`sharens.train.members`); the runs of each cell, in order."""
    speed = Speed(**net.speed)
    members = [(seed, split) for member_seeds, split in zip(seeds, splits, strict=True) for seed in member_seeds]
    models = [_seeded_model(net, x, num_classes, seed) for seed, _ in members]
    # a cell's gradient norms are its first member's, as `_train_one` measures them
    probes = [_gradient_probe(net, model, x[split.fit], y[split.fit]) if k % net.members == 0 else None
              for k, (model, (_, split)) in enumerate(zip(models, members, strict=True))]
    norms = [{"init": probe(), "head_weight": float(model.head_weights.sum())} if probe else None
             for model, probe in zip(models, probes, strict=True)]
    watch = splits[0].held is not None
    results = train_members(models, x, y, **_fit_options(net), seeds=[seed for seed, _ in members], desc=desc,
                            rows=torch.stack([split.fit for _, split in members]),
                            heldout_rows=torch.stack([split.held for _, split in members]) if watch else None)
    runs = []
    for model, result, probe, norm, (_, split) in zip(models, results, probes, norms, members, strict=True):
        if norm is not None and result.diverged_at_step is None:
            norm["trained"] = probe()
        held = None if split.held is None else x[split.held]
        runs.append(Trained(model, result, *_test_logits(model, x_test, speed), _heldout_logits(model, held, speed),
                            norm))
    return [runs[c : c + net.members] for c in range(0, len(runs), net.members)]


def _train_snapshots(net: NetworkSpec, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, num_classes: int,
                     seed: int, desc: str, heldout: tuple[torch.Tensor, torch.Tensor] | None) -> list[Trained]:
    """A snapshot ensemble (Huang et al. 2017): one model trained in `net.snapshots` cycles, each a run of the
    cosine-annealed preset from where the last one ended (the rate and the optimizer restart, the data order is
    the cycle's own), and its test logits after every cycle: one voter per snapshot."""
    model = _seeded_model(net, x, num_classes, seed)
    speed, cycle_epochs = Speed(**net.speed), net.epochs // net.snapshots
    snapshots = []
    for cycle in range(net.snapshots):
        result = train(model, x, y, **_fit_options(net, epochs=cycle_epochs),  # the plan gives cycles no patience
                       seed=seed + 1000 * cycle, desc=f"{desc} cycle {cycle + 1}", heldout=heldout)
        snapshots.append(Trained(model, result, *_test_logits(model, x_test, speed),
                                 _heldout_logits(model, None if heldout is None else heldout[0], speed)))
        if result.diverged_at_step is not None:
            break
    return snapshots


def _joined(results: list[TrainResult]) -> TrainResult:
    """The cycles of a snapshot ensemble as one run: times and steps summed, curves end to end."""
    last = results[-1]
    return TrainResult(
        seconds=sum(r.seconds for r in results), steps=sum(r.steps for r in results),
        samples=sum(r.samples for r in results), final_loss=last.final_loss,
        diverged_at_step=last.diverged_at_step, stopped=last.stopped,
        epoch_loss=[v for r in results for v in r.epoch_loss],
        epoch_train_accuracy=[v for r in results for v in r.epoch_train_accuracy],
        heldout_loss=[v for r in results for v in r.heldout_loss])


@dataclass
class Split:
    """A seed's rows of the training set: those it trains on, and those held out (None: no hold-out)."""

    fit: torch.Tensor
    held: torch.Tensor | None


def holdout_split(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(fit rows, held-out rows) of a train set: a seeded random `fraction` is held out."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    held = max(1, round(n * fraction))
    return order[held:].sort().values, order[:held].sort().values


def _split(net: NetworkSpec, n: int, seed: int, device: torch.device) -> Split:
    """Rows the model never trains on (for the stopping rule and the accuracy-weighted vote), if it holds out."""
    if not net.holdout:
        return Split(torch.arange(n, device=device), None)
    fit, held = (rows.to(device) for rows in holdout_split(n, net.holdout, seed))
    return Split(fit, held)


def _network_cells(specs: list[CellSpec], data: DeviceData,
                   checkpoint: Path | None) -> list[tuple[dict, dict[str, np.ndarray]]]:
    net = specs[0].network  # the cells of a group differ only in their seeds
    (x, x_test), y = data.x(net.inputs), data.y_train
    splits = [_split(net, len(y), spec.seed, x.device) for spec in specs]
    seeds = [[spec.seed + 1000 * k for k in range(net.members)] for spec in specs]
    desc = f"{specs[0].dataset} {specs[0].row.label} s{','.join(str(spec.seed) for spec in specs)}"
    if net.speed.get("batched_seeds") or net.speed.get("batched_members"):  # recorded only where they act
        runs = _train_batched(net, x, y, x_test, data.num_classes, seeds, splits, desc)
    else:
        (split,), (member_seeds,) = splits, seeds  # only batched_seeds trains cells together
        heldout = None if split.held is None else (x[split.held], y[split.held])
        if net.snapshots:
            runs = [_train_snapshots(net, x[split.fit], y[split.fit], x_test, data.num_classes, specs[0].seed, desc,
                                     heldout)]
        else:
            runs = [[_train_one(net, x[split.fit], y[split.fit], x_test, data.num_classes, seed, desc, heldout,
                                checkpoint) for seed in member_seeds]]
    return [_network_result(net, cell_runs, y[split.fit], None if split.held is None else y[split.held], x_test,
                            data)
            for cell_runs, split in zip(runs, splits, strict=True)]


def _network_result(net: NetworkSpec, runs: list[Trained], y_fit: torch.Tensor, y_held: torch.Tensor | None,
                    x_test: torch.Tensor, data: DeviceData) -> tuple[dict, dict[str, np.ndarray]]:
    """A network cell's record fields and outcomes, from its trained runs: one, or one per member or snapshot
    (each a voter)."""
    model = runs[0].model
    costs = list(tap_flops(model, x_test).values())
    majority, entropy = class_prior(y_fit.cpu().numpy(), data.num_classes)
    diverged = [r.result.diverged_at_step for r in runs if r.result.diverged_at_step is not None]
    train_seconds = sum(r.result.seconds for r in runs)
    eval_seconds = sum(r.eval_seconds for r in runs)
    run = _joined([r.result for r in runs]) if net.snapshots else runs[0].result  # what the curves show
    record = {
        "status": "diverged" if diverged else "ok",
        "diverged_at_step": diverged[0] if diverged else None,
        "params": sum(p.numel() for p in model.parameters()) * len(runs),
        "flops_per_sample": costs[-1] * len(runs) or None,
        "train_seconds": train_seconds,
        "train_samples_per_s": sum(r.result.samples for r in runs) / train_seconds if train_seconds else None,
        "eval_samples_per_s": len(runs) * len(data.y_test) / eval_seconds if eval_seconds else None,
        "steps": run.steps,
        "final_loss": _finite(run.final_loss),
        "init": model.backbone.init,
        "majority_rate": majority, "prior_entropy": entropy, "patience": net.patience,
        "stop_on": net.stop_on,
        "n_fit": len(y_fit), "n_holdout": 0 if y_held is None else len(y_held),
        **_curves(run),
    }
    resumed = sorted({epoch for r in runs for epoch in r.result.resumed_after})
    if resumed:  # its train_seconds span every sitting, its wall_seconds only the last
        record["resumed_after_epochs"] = resumed
    if len(runs) > 1:  # each member, or each snapshot's cycle, is judged on its own (`health.judge_cell`)
        record["member_curves"] = [_curves(r.result) for r in runs]
    if runs[0].gradient_norms is not None:
        record["first_layer_gradient_norm"] = runs[0].gradient_norms
    if diverged:
        return record, {}
    # The voters: the heads of one SE model, or each ensemble member's single head.
    logits = torch.cat([r.test_logits for r in runs], dim=1)
    held_logits = None if y_held is None else torch.cat([r.heldout_logits for r in runs], dim=1)
    weights = None
    if net.vote == "accuracy_weighted":  # head weights come from the held-out rows
        weights = head_accuracies(held_logits, y_held)
        record["vote_weights"] = weights.tolist()
    evaluated, outcomes = evaluate_network(logits, data.y_test, net.vote, weights)
    if len(runs) == 1:  # the heads of one network, grouped by tap
        names, groups = model.head_names, [tap_of(name) for name in model.head_names]
        prefix_flops = dict(zip(model.taps, costs, strict=True))
    else:  # one group per member or snapshot; a prefix is the first k of them
        voter = "snapshot" if net.snapshots else "member"
        names = groups = [f"{voter}{k}" for k in range(len(runs))]
        prefix_flops = {name: (k + 1) * costs[-1] for k, name in enumerate(names)}
    ballot = Ballot(data.y_test, weights)
    record.update(evaluated, head_names=names,
                  analysis=analyse(logits, data.y_test, held_logits, y_held, groups, prefix_flops,
                                   lambda voters: VOTES[net.vote].scores(voters, ballot), names,
                                   evaluated["metrics"]))
    return record, outcomes


def _curves(result: TrainResult) -> dict:
    return {"epoch_loss": result.epoch_loss, "epoch_train_accuracy": result.epoch_train_accuracy,
            "heldout_loss": result.heldout_loss, "best_epoch": result.best_epoch, "stopped": result.stopped}


def _classic_cell(spec: CellSpec, data: DeviceData) -> tuple[dict, dict[str, np.ndarray]]:
    classic = spec.classic
    estimator = build_classic(classic.estimator, spec.seed, classic.forest_trees, classic.max_iter, spec.threads)
    x_train, x_test = data.numpy_inputs[classic.inputs]
    if x_train.dtype == np.uint8:  # pixels: scaled to [0, 1] as the networks see them (before centring)
        x_train, x_test = x_train.astype(np.float32) / 255, x_test.astype(np.float32) / 255
    start = time.perf_counter()
    solver = fit_classic(estimator, x_train.reshape(len(x_train), -1), data.y_train_np, classic.max_iter)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    predictions = estimator.predict(x_test.reshape(len(x_test), -1))
    eval_seconds = time.perf_counter() - start
    evaluated, outcomes = evaluate_predictions(predictions, data.y_test_np, data.num_classes)
    return {
        "status": "ok",
        **evaluated,
        "train_seconds": train_seconds,
        "train_samples_per_s": len(data.y_train_np) / train_seconds,
        "eval_samples_per_s": len(data.y_test_np) / eval_seconds,
        **({"solver": solver} if solver else {}),
    }, outcomes
