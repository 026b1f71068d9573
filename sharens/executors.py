"""Where cells run: every executor registered by name.

An executor takes the cells to run (spec and key), the device and the data
root (and its own options, such as `jobs` or a cluster's `address`), and
yields `(spec, key, result)` as cells finish, where result is `(record,
outcomes)` or the exception the cell raised. It holds no state between cells
that could change a number: each spec seeds itself and fixes its own thread
count, so every executor gives the same numbers. The runner, in the driving
process, stores each result as it arrives, so no executor needs a shared
filesystem for results.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from sharens.data import load_dataset
from sharens.execute import DeviceData, prepare, run_cell
from sharens.plan import CellSpec

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


@register_executor("local")
def run_here(todo: list[tuple[CellSpec, str]], device: torch.device, data_root: Path | None,
             jobs: int = 1) -> Iterator[tuple[CellSpec, str, Result]]:
    """One cell after another in this process."""
    data = PreparedData(device, data_root)
    for spec, key in todo:
        try:
            result: Result = run_cell(spec, data.for_spec(spec), device)
        except Exception as exc:  # one broken cell must not lose the others
            result = exc
        yield spec, key, result


_WORKER: dict = {}  # a worker process's prepared data, kept across its cells


def _run_in_worker(spec: CellSpec, device: str, data_root: Path | None) -> tuple[dict, dict]:
    """Process-pool entry point: needs only the spec (it never imports `benchmarks`)."""
    data = _WORKER.setdefault((device, data_root), PreparedData(torch.device(device), data_root))
    return run_cell(spec, data.for_spec(spec), torch.device(device))


@register_executor("processes")
def run_in_processes(todo: list[tuple[CellSpec, str]], device: torch.device, data_root: Path | None,
                     jobs: int = 2) -> Iterator[tuple[CellSpec, str, Result]]:
    """`jobs` spawned worker processes on this machine's CPU, one cell at a time each."""
    if device.type != "cpu":
        raise ValueError("--jobs > 1 is for CPU runs; a GPU runs one cell at a time")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = {pool.submit(_run_in_worker, spec, device.type, data_root): (spec, key) for spec, key in todo}
        for future in as_completed(futures):
            spec, key = futures[future]
            exc = future.exception()
            yield spec, key, exc if exc is not None else future.result()


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
               jobs: int = 1, address: str | None = None) -> Iterator[tuple[CellSpec, str, Result]]:
    """One Ray task per cell on the cluster at `address` (None: a local one of `jobs` CPUs). Tasks return
    their record and outcomes to this process; every node reads the data at `data_root` (or its own
    $SHARENS_DATA). A task whose worker dies is retried (`RAY_RETRIES`); one that raises is not."""
    import ray

    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(_run_in_worker)
        running = {task.options(**ray_resources(spec, device), max_retries=RAY_RETRIES, retry_exceptions=False)
                   .remote(spec, device.type, data_root): (spec, key) for spec, key in todo}
        while running:
            (ref,), _ = ray.wait(list(running), num_returns=1)
            spec, key = running.pop(ref)
            try:
                result: Result = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # the cell raised: its own exception, as other executors
                result = exc.as_instanceof_cause()
            except ray.exceptions.RayError as exc:  # its worker died more often than retried
                result = exc
            yield spec, key, result
    finally:
        ray.shutdown()
