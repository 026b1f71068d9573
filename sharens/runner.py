"""Run a table: plan its cells, skip finished ones, train/evaluate the rest, record everything."""

from __future__ import annotations

import copy
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from sharens import provenance
from sharens.augment import get_augmentation
from sharens.backbones import CenteredImages, build_backbone
from sharens.benchmark import Pair, Profile, Table
from sharens.cells import Cell, CellStore
from sharens.classic import build_classic
from sharens.data import Dataset, load_dataset
from sharens.diagnostics import first_layer_gradient_norm
from sharens.ensemble import SharingEnsemble
from sharens.training import Speed, TrainResult, predict_logits, train
from sharens.voting import head_accuracies, predict

SUBSET_SEED = 0  # smoke/quick slices are the same for every seed and model
CPU = torch.device("cpu")


@dataclass
class DeviceData:
    """One data set's split, possibly sliced by the profile: every input view as tensors on the device.

    `inputs[view]` = (x_train, x_test); view None is the data set's default input.
    scikit-learn models read the numpy arrays in `numpy_inputs`. `test_masks`
    name subsets of the test rows (CIFAR-10's lossless images) that get their own accuracy.
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
    test_masks: dict[str, np.ndarray]

    def x(self, view: str | None) -> tuple[torch.Tensor, torch.Tensor]:
        if view not in self.inputs:
            raise ValueError(f"{self.name} has no input view {view!r}; it has {sorted(map(str, self.inputs))}")
        return self.inputs[view]


def _slice(n: int, keep: int | None) -> np.ndarray:
    if keep is None or keep >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(SUBSET_SEED).permutation(n)[:keep])


def prepare(dataset: Dataset, profile: Profile, device: torch.device) -> DeviceData:
    tr, te = _slice(len(dataset.y_train), profile.train_subset), _slice(len(dataset.y_test), profile.test_subset)

    def to_device(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    numpy_inputs = {view: (train[tr], test[te])
                    for view, (train, test) in {None: dataset.inputs(), **dataset.views}.items()}
    inputs = {view: (to_device(a), to_device(b)) for view, (a, b) in numpy_inputs.items()}
    y_train, y_test = dataset.y_train[tr], dataset.y_test[te]
    masks = {name: mask[te] for name, mask in dataset.test_masks.items()}
    info = {**dataset.info, "n_train": len(tr), "n_test": len(te),
            **({"test_subsets": {name: int(mask.sum()) for name, mask in masks.items()}} if masks else {})}
    return DeviceData(dataset.name, inputs, to_device(y_train), to_device(y_test), len(dataset.classes),
                      numpy_inputs, y_train, y_test, info, masks)


def plan(table: Table, profile: Profile, seeds: int, presets: list[str], datasets: list[str],
         speed: Speed | None = None) -> list[Cell]:
    """Every cell of the table, in the order they run (cheap rows first per data set)."""
    speed = speed or Speed()
    cells = []
    for dataset in datasets:
        for seed in range(seeds):
            for classic in table.classic:
                cfg = {"estimator": classic.estimator, "forest_trees": profile.forest_trees,
                       "inputs": classic.inputs, **_data_config(profile)}
                cells.append(Cell(table.id, dataset, classic.name, "classic", None, seed, cfg))
            for preset in presets:
                for pair in (p for p in table.pairs if profile.runs(p.name)):
                    base = {
                        "pair": pair.name, "backbone": pair.backbone, "options": pair.options_for(dataset),
                        "inputs": pair.inputs, "epochs": profile.epochs_for(dataset, pair.name),
                        "batch_size": table.batch_size,
                        "preset": table.preset_for(pair, preset).config(), **_data_config(profile),
                        **_optional(augment=table.augment, probe_gradients=table.probe_gradients,
                                    speed=speed.config()),
                    }
                    se = {**base, "heads_per_tap": pair.heads_per_tap, "tap_weights": pair.tap_weights}
                    cells.append(Cell(table.id, dataset, pair.name, "baseline", preset, seed, base))
                    cells.append(Cell(table.id, dataset, pair.se_name, "se", preset, seed, se))
                    if pair.weighted_vote_holdout:
                        cells.append(Cell(table.id, dataset, pair.weighted_name, "se_weighted", preset, seed,
                                          {**se, "vote_holdout": pair.weighted_vote_holdout}))
                    k = min(pair.independent_ensemble, profile.ensemble_size) if pair.independent_ensemble else 0
                    if k:
                        cells.append(Cell(table.id, dataset, pair.ensemble_name(k), "independent",
                                          preset, seed, {**base, "members": k}))
    return cells


def _optional(**settings) -> dict:
    """Settings that only some tables use, left out when unset so other tables' cell hashes stay as they were."""
    return {k: v for k, v in settings.items() if v}


def _data_config(profile: Profile) -> dict:
    return {"train_subset": profile.train_subset, "test_subset": profile.test_subset}


def flops_per_sample(model: torch.nn.Module, x: torch.Tensor) -> float | None:
    """Forward FLOPs per sample: torch's flop counter plus what a backbone declares it cannot see."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x[:2])
    return counter.get_total_flops() / 2 + getattr(model.backbone, "uncounted_flops", 0) or None


def _accuracy(predictions: torch.Tensor, targets: torch.Tensor) -> float:
    return 100.0 * (predictions == targets).float().mean().item()


def _subset_accuracies(predictions, targets, masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Accuracy on each named subset of the test rows (numpy or torch predictions)."""
    correct = np.asarray(torch.as_tensor(predictions).cpu() == torch.as_tensor(targets).cpu())
    return {name: 100.0 * float(correct[mask].mean()) for name, mask in masks.items() if mask.any()}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass
class Trained:
    model: SharingEnsemble
    result: TrainResult
    test_logits: torch.Tensor
    eval_seconds: float
    gradient_norms: dict[str, float] | None = None


def _train_one(pair: Pair, se: bool, data: DeviceData, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor,
               table: Table, profile: Profile, preset: str, seed: int, desc: str, speed: Speed) -> Trained:
    torch.manual_seed(seed)
    backbone = build_backbone(pair.backbone, x.shape[1:], **pair.options_for(data.name))
    if x.dtype == torch.uint8:  # images: float conversion and centring happen inside the model, per batch
        backbone = CenteredImages.around(backbone, x)
    if se:
        model = SharingEnsemble(backbone, data.num_classes, pair.heads_per_tap, tap_weights=pair.tap_weights)
    else:
        model = SharingEnsemble.baseline(backbone, data.num_classes)
    model.to(x.device)
    probe = (x[: table.batch_size], y[: table.batch_size])  # a fixed batch of train rows

    def gradient_norm() -> float:  # on a copy, so the probe's batch-norm update does not touch the model
        return first_layer_gradient_norm(copy.deepcopy(model), *probe)

    norms = {"init": gradient_norm()} if table.probe_gradients else None
    result = train(model, x, y, preset=table.preset_for(pair, preset), epochs=profile.epochs_for(data.name, pair.name),
                   batch_size=table.batch_size, seed=seed, desc=desc, augment=get_augmentation(table.augment),
                   speed=speed)
    if norms is not None and result.diverged_at_step is None:
        norms["trained"] = gradient_norm()
    start = time.perf_counter()
    logits = predict_logits(model, x_test, speed=speed)
    if x_test.device.type == "cuda":
        torch.cuda.synchronize()
    return Trained(model, result, logits, time.perf_counter() - start, norms)


def holdout_split(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(fit rows, held-out rows) of a train set: a seeded random `fraction` is held out."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    held = max(1, round(n * fraction))
    return order[held:].sort().values, order[:held].sort().values


def _network_cell(cell: Cell, table: Table, profile: Profile, data: DeviceData) -> dict:
    pair = next(p for p in table.pairs if p.name == cell.config["pair"])
    members = cell.config.get("members", 1)
    (x, x_test), y = data.x(pair.inputs), data.y_train
    holdout = cell.config.get("vote_holdout")
    if holdout:  # accuracy-weighted voting: head weights come from rows the model never trains on
        fit, held = (i.to(x.device) for i in holdout_split(len(y), holdout, cell.seed))
        x, y, x_held, y_held = x[fit], y[fit], x[held], y[held]
    runs = [
        _train_one(pair, cell.kind in ("se", "se_weighted"), data, x, y, x_test, table, profile,
                   cell.preset, cell.seed + 1000 * k, desc=f"{cell.dataset} {cell.model} s{cell.seed}",
                   speed=Speed(**cell.config.get("speed", {})))
        for k in range(members)
    ]
    model = runs[0].model
    diverged = [r.result.diverged_at_step for r in runs if r.result.diverged_at_step is not None]
    train_seconds = sum(r.result.seconds for r in runs)
    eval_seconds = sum(r.eval_seconds for r in runs)
    record = {
        "status": "diverged" if diverged else "ok",
        "diverged_at_step": diverged[0] if diverged else None,
        "params": sum(p.numel() for p in model.parameters()) * members,
        "flops_per_sample": (flops_per_sample(model, x_test) or 0) * members or None,
        "train_seconds": train_seconds,
        "train_samples_per_s": sum(r.result.samples for r in runs) / train_seconds if train_seconds else None,
        "eval_samples_per_s": members * len(data.y_test) / eval_seconds if eval_seconds else None,
        "steps": runs[0].result.steps,
        "final_loss": _finite(runs[0].result.final_loss),
    }
    if runs[0].gradient_norms is not None:
        record["first_layer_gradient_norm"] = runs[0].gradient_norms
    if diverged:
        return record
    # The voters: the heads of one SE model, or each ensemble member's single head.
    logits = torch.cat([r.test_logits for r in runs], dim=1)
    heads = head_accuracies(logits, data.y_test)
    if holdout:
        weights = head_accuracies(predict_logits(model, x_held, speed=Speed(**cell.config.get("speed", {}))), y_held)
        record.update(vote_weights=weights.tolist(), n_holdout=len(y_held),
                      soft_vote_accuracy=_accuracy(predict(logits, "soft"), data.y_test))
        vote = predict(logits, "accuracy", weights)
    else:
        vote = predict(logits, "soft")
    accuracy = _accuracy(vote, data.y_test)
    if data.test_masks:
        record["subset_accuracy"] = _subset_accuracies(vote, data.y_test, data.test_masks)
    record.update(
        accuracy=accuracy,
        hard_vote_accuracy=_accuracy(predict(logits, "hard"), data.y_test),
        head_accuracies=[100.0 * a for a in heads.tolist()],
        head_names=model.head_names if members == 1 else [f"member{k}" for k in range(members)],
        last_head_accuracy=100.0 * heads[-1].item(),
        best_head_accuracy=100.0 * heads.max().item(),
    )
    return record


def _classic_cell(cell: Cell, profile: Profile, data: DeviceData) -> dict:
    estimator = build_classic(cell.config["estimator"], cell.seed, profile.forest_trees)
    x_train, x_test = data.numpy_inputs[cell.config["inputs"]]
    if x_train.dtype == np.uint8:  # pixels: scaled to [0, 1] as the networks see them (before centring)
        x_train, x_test = x_train.astype(np.float32) / 255, x_test.astype(np.float32) / 255
    start = time.perf_counter()
    estimator.fit(x_train.reshape(len(x_train), -1), data.y_train_np)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    predictions = estimator.predict(x_test.reshape(len(x_test), -1))
    eval_seconds = time.perf_counter() - start
    subsets = {"subset_accuracy": _subset_accuracies(predictions, data.y_test_np, data.test_masks)} \
        if data.test_masks else {}
    return {
        "status": "ok",
        "accuracy": 100.0 * float(np.mean(predictions == data.y_test_np)),
        **subsets,
        "train_seconds": train_seconds,
        "train_samples_per_s": len(data.y_train_np) / train_seconds,
        "eval_samples_per_s": len(data.y_test_np) / eval_seconds,
    }


def run_cell(cell: Cell, table: Table, profile: Profile, data: DeviceData, device: torch.device) -> dict:
    """Train and evaluate one cell; return its full record (results + provenance)."""
    started = datetime.now(UTC).isoformat(timespec="seconds")
    start = time.perf_counter()
    if cell.kind == "classic":
        result = _classic_cell(cell, profile, data)
    else:
        result = _network_cell(cell, table, profile, data)
    return {
        "table": cell.table, "dataset": cell.dataset, "model": cell.model, "kind": cell.kind,
        "preset": cell.preset, "seed": cell.seed, "profile": profile.name,
        "n_train": data.info["n_train"], "n_test": data.info["n_test"], "data": data.info,
        "config": cell.config, "config_hash": cell.config_hash,
        **result,
        "provenance": {
            **provenance.environment(), "device": provenance.device_name(device),
            "started_utc": started, "wall_seconds": time.perf_counter() - start,
        },
    }


_WORKER_DATA: dict = {}  # a worker process's prepared data sets, loaded on its first cell of each


def _run_cell_in_worker(table_id: str, profile_name: str, cell: Cell, device: str,
                        data_root: Path | None) -> dict:
    """Process-pool entry point: one thread per worker, data loaded once per worker and data set."""
    from benchmarks import get_table

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    table = get_table(table_id)
    profile = table.profile(profile_name)
    key = (table_id, profile_name, cell.dataset)
    if key not in _WORKER_DATA:
        _WORKER_DATA[key] = prepare(load_dataset(cell.dataset, data_root), profile, torch.device(device))
    return run_cell(cell, table, profile, _WORKER_DATA[key], torch.device(device))


def run_table(
    table: Table,
    profile_name: str,
    *,
    out: Path,
    seeds: int | None = None,
    presets: list[str] | None = None,
    device: torch.device = CPU,
    data_root: Path | None = None,
    force: bool = False,
    datasets: list[str] | None = None,
    jobs: int = 1,
    compile: bool = False,
) -> tuple[list[dict], list[str]]:
    """Run (or resume) every cell of `table`; return (records, errors).

    `presets` default to the table's. Finished cells are saved as they complete
    and skipped on a rerun unless `force`; a cell that raises is reported in `errors` and the run goes on.
    `jobs` > 1 runs cells in that many worker processes of one thread each
    (CPU only); every cell seeds itself, so the numbers do not depend on the
    schedule. On CUDA cells train with bf16 autocast and channels_last, and
    `compile` adds torch.compile (see `training.Speed`); each cell records these.
    """
    profile = table.profile(profile_name)
    presets = list(presets or table.presets)
    for preset in presets:
        table.preset(preset)  # fail before any work on a typo
    if jobs > 1 and device.type != "cpu":
        raise ValueError("--jobs > 1 is for CPU runs; a GPU runs one cell at a time")
    datasets = list(datasets or table.datasets)
    cells = plan(table, profile, seeds or profile.seeds, presets, datasets, Speed.for_device(device, compile))
    store = CellStore(out, table.id, profile.name)
    torch.use_deterministic_algorithms(True, warn_only=True)
    records, errors = {}, []  # records by cell file name
    todo = []
    for cell in cells:
        record = None if force else store.load(cell)
        if record is None:
            todo.append(cell)
        else:
            records[cell.filename] = record
    # a missing or corrupt file fails here, once, before any work (this also fills the cache for workers)
    sources = {name: load_dataset(name, data_root) for name in dict.fromkeys(cell.dataset for cell in todo)}

    def finished(cell: Cell, record: dict | None, exc: Exception | None) -> None:
        if exc is not None:  # one broken cell must not lose the others
            errors.append(f"{cell.dataset} / {cell.model} / seed {cell.seed}: {type(exc).__name__}: {exc}")
        else:
            store.save(cell, record)
            records[cell.filename] = record

    progress = tqdm(total=len(todo), desc=table.id, disable=None)
    if jobs > 1 and todo:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = {pool.submit(_run_cell_in_worker, table.id, profile.name, cell, device.type, data_root): cell
                       for cell in todo}
            for future in as_completed(futures):
                exc = future.exception()
                finished(futures[future], None if exc else future.result(), exc)
                progress.update()
    else:
        loaded = {}
        for cell in todo:
            if cell.dataset not in loaded:
                loaded[cell.dataset] = prepare(sources.pop(cell.dataset), profile, device)
            try:
                finished(cell, run_cell(cell, table, profile, loaded[cell.dataset], device), None)
            except Exception as exc:
                finished(cell, None, exc)
            progress.update()
    progress.close()
    return [records[cell.filename] for cell in cells if cell.filename in records], errors
