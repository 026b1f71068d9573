"""Where cells run: every executor registered by name.

An executor takes the cells to run (spec and key), the device and the data
root (and its own options, such as `jobs` or a cluster's `address`), and
yields `(spec, key, result)` as cells finish, where result is `(record,
outcomes)` or the exception the cell raised. Cells run alone, or with the
other seeds of their group where their specs ask for `batched_seeds`
(`cell_groups`): the unit every executor schedules. An executor holds no state
between units that could change a number: each spec seeds itself and fixes its
own thread count, so every executor gives the same numbers. The runner, in the driving
process, stores each result as it arrives, so no executor needs a shared
filesystem for results. With a `checkpoints` folder, a cell that trains alone saves
its state there between epochs and resumes from it when run again (a killed run
loses at most a minute or so of a long cell, `sharens.train.checkpoint`).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from sharens.data import load_dataset
from sharens.execution.cell import DeviceData, prepare, run_cells, seed_group
from sharens.suite.plan import CellSpec

Result = tuple[dict, dict] | BaseException
Executor = Callable[..., Iterator[tuple[CellSpec, str, Result]]]
EXECUTORS: dict[str, Executor] = {}


def register_executor(name: str):
    def add(fn: Executor) -> Executor:
        EXECUTORS[name] = fn
        return fn
    return add


class PreparedData:
    """Data sets loaded once per process and cut to each slice a spec asks for, on one device."""

    def __init__(self, device: torch.device, data_root: Path | None):
        self.device, self.data_root, self.cache = device, data_root, {}

    def for_spec(self, spec: CellSpec) -> DeviceData:
        key = (spec.dataset, spec.train_subset, spec.test_subset)
        if key not in self.cache:
            self.cache[key] = prepare(load_dataset(spec.dataset, self.data_root), spec.train_subset,
                                      spec.test_subset, self.device)
        return self.cache[key]


Unit = list[tuple[CellSpec, str]]  # cells that run together: one, or a cell group's seeds


def cell_groups(todo: list[tuple[CellSpec, str]]) -> list[Unit]:
    """The cells to run, in units: each cell alone, except that the seeds of a group whose specs ask for
    `batched_seeds` (the same work but for the seed) form one unit, in the order their first seed comes."""
    units: dict[str, Unit] = {}
    for spec, key in todo:
        units.setdefault(seed_group(spec) or key, []).append((spec, key))
    return list(units.values())


def _checkpoint(unit: Unit, checkpoints: Path | None) -> Path | None:
    """Where a unit's training state is saved between epochs: a cell that trains alone, under its key."""
    return checkpoints / unit[0][1] if checkpoints is not None and len(unit) == 1 else None


def _results(unit: Unit, outcome: list[tuple[dict, dict]] | BaseException) -> Iterator[tuple[CellSpec, str, Result]]:
    """Each cell of a unit with its result (or the exception the unit raised)."""
    for k, (spec, key) in enumerate(unit):
        yield spec, key, outcome if isinstance(outcome, BaseException) else outcome[k]


@register_executor("local")
def run_here(todo: list[tuple[CellSpec, str]], device: torch.device, data_root: Path | None,
             jobs: int = 1, checkpoints: Path | None = None) -> Iterator[tuple[CellSpec, str, Result]]:
    """One unit after another in this process."""
    data = PreparedData(device, data_root)
    for unit in cell_groups(todo):
        specs = [spec for spec, _ in unit]
        try:
            outcome = run_cells(specs, data.for_spec(specs[0]), device, _checkpoint(unit, checkpoints))
        except Exception as exc:  # one broken cell must not lose the others
            outcome = exc
        yield from _results(unit, outcome)


_WORKER: dict = {}  # a worker process's prepared data, kept across its cells


def _run_in_worker(specs: list[CellSpec], device: str, data_root: Path | None,
                   checkpoint: Path | None = None) -> list[tuple[dict, dict]]:
    """Process-pool entry point: needs only the specs (it never imports `benchmarks`)."""
    data = _WORKER.setdefault((device, data_root), PreparedData(torch.device(device), data_root))
    return run_cells(specs, data.for_spec(specs[0]), torch.device(device), checkpoint)


@register_executor("processes")
def run_in_processes(todo: list[tuple[CellSpec, str]], device: torch.device, data_root: Path | None,
                     jobs: int = 2, checkpoints: Path | None = None) -> Iterator[tuple[CellSpec, str, Result]]:
    """`jobs` spawned worker processes on this machine's CPU, one unit at a time each."""
    if device.type != "cpu":
        raise ValueError("--jobs > 1 is for CPU runs; a GPU runs one cell at a time")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = {pool.submit(_run_in_worker, [spec for spec, _ in unit], device.type, data_root,
                               _checkpoint(unit, checkpoints)): unit
                   for unit in cell_groups(todo)}
        for future in as_completed(futures):
            exc = future.exception()
            yield from _results(futures[future], exc if exc is not None else future.result())


RAY_RETRIES = 3  # a cell whose worker process dies (killed, out of memory) runs again, up to this many times
SMALL_BACKBONES = ("pyramid_dnn", "mlp")  # tabular nets that leave a GPU mostly idle: they share one
SMALL_CELL_GPU = 0.25


def ray_resources(spec: CellSpec, device: torch.device) -> dict:
    """What a cell's Ray task declares: its CPU threads, and on a GPU a whole device, or a share of one for
    the small tabular networks (scikit-learn cells need none)."""
    gpus = 0.0
    if device.type == "cuda" and spec.network is not None:
        gpus = SMALL_CELL_GPU if spec.network.backbone in SMALL_BACKBONES else 1.0
    return {"num_cpus": spec.threads, "num_gpus": gpus}


@register_executor("ray")
def run_on_ray(todo: list[tuple[CellSpec, str]], device: torch.device, data_root: Path | None,
               jobs: int = 1, address: str | None = None,
               checkpoints: Path | None = None) -> Iterator[tuple[CellSpec, str, Result]]:
    """One Ray task per unit (`cell_groups`) on the cluster at `address` (None: a local one of `jobs` CPUs).
    Tasks return their records and outcomes to this process; every node reads the data at `data_root` (or its
    own $SHARENS_DATA). A task whose worker dies is retried (`RAY_RETRIES`), from its last checkpoint on a local
    cluster; one that raises is not. A remote cluster's nodes do not share this machine's folders: there,
    cells keep no checkpoints."""
    import ray

    if address:
        ray.init(address=address, log_to_driver=False)
        checkpoints = None
    else:
        ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(_run_in_worker)
        running = {task.options(**ray_resources(unit[0][0], device), max_retries=RAY_RETRIES, retry_exceptions=False)
                   .remote([spec for spec, _ in unit], device.type, data_root, _checkpoint(unit, checkpoints)): unit
                   for unit in cell_groups(todo)}
        while running:
            (ref,), _ = ray.wait(list(running), num_returns=1)
            unit = running.pop(ref)
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # the cell raised: its own exception, as other executors
                outcome = exc.as_instanceof_cause()
            except ray.exceptions.RayError as exc:  # its worker died more often than retried
                outcome = exc
            yield from _results(unit, outcome)
    finally:
        ray.shutdown()
