"""Run a table: plan its cells, skip the stored ones, run the rest on an executor, store each as it lands."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from sharens import provenance
from sharens.data import SOURCES, DataMissing, ensure, load_dataset
from sharens.data.shapes import data_shape
from sharens.execution import timing
from sharens.execution.costs import CostModel, epochs_used
from sharens.execution.executors import EXECUTORS, PreparedData
from sharens.judge import throughput
from sharens.suite.plan import CELL_THREADS, CellSpec, plan
from sharens.suite.store import CellStore, Outcomes, cell_key
from sharens.suite.table import Table
from sharens.train.speed import Speed

CPU = torch.device("cpu")


@dataclass
class TableRun:
    records: list[dict]  # every finished cell of the plan, in plan order (stored ones included)
    errors: list[str]  # cells that raised, one line each
    outcomes: Outcomes  # per-row outcomes of those records
    planned: int = 0  # cells of the whole plan (with `rows`, more than are stored plus to run)
    # the cost model's time for the cells still to run (with `estimate`): expected (epochs as the finished cells
    # of the same pair ran them under a stopping rule) and at most (every epoch cap reached)
    estimated_seconds: float | None = None
    bound_seconds: float | None = None
    plan_bound_seconds: float | None = None  # the same bound for every cell of the plan, stored or not
    device_name: str | None = None  # what the estimate is for
    resumable: int = 0  # cells still to run that resume from a checkpoint (estimates count them whole)
    older: list[dict] = field(default_factory=list)  # committed cells from before keys, in no rerun slot
    throughput: list[dict] = field(default_factory=list)  # the plan's pairs' step-time measurements, every device
    downloads: dict[str, str] = field(default_factory=dict)  # (a plan only) data set a run would fetch -> its size

    @property
    def reported(self) -> list[dict]:
        """What the table's report shows: the finished cells, then the older ones."""
        return self.records + self.older


@dataclass
class Work:
    """A table's plan at one profile, keyed, against its cell store: what is stored and what is still to run."""

    keyed: list[tuple[CellSpec, str]]  # every cell of the plan, in plan order, with its key
    store: CellStore
    records: dict[str, dict]  # key -> record of the stored cells
    todo: list[tuple[CellSpec, str]]  # the cells still to run (only the rows, presets and seeds asked for)
    keyless: list[dict]  # committed cells from before cells were keyed (see CellStore.older_cells)
    missing: dict[str, str] = field(default_factory=dict)  # data set not here -> what its download fetches


def pending(table: Table, profile_name: str, *, out: Path, seeds: int | None = None,
            presets: list[str] | None = None, device: torch.device = CPU, data_root: Path | None = None,
            force: bool = False, datasets: list[str] | None = None, speed: Sequence[str] = (),
            rows: list[str] | None = None, download: bool = False, missing_ok: bool = False) -> Work:
    """Plan `table` at a profile, key every cell on its data, and find the stored ones (see `run_table`)."""
    profile = table.profile(profile_name)
    asked_presets = list(presets or table.presets)
    for preset in asked_presets:
        table.preset(preset)  # fail before any work on a typo
    asked_seeds = seeds or profile.seeds
    # the plan covers the table's own presets and seeds as well as those asked for, so that a run of some of them
    # still reports the stored cells of the others; only the asked ones run
    specs = plan(table, profile, max(asked_seeds, profile.seeds), list(dict.fromkeys([*table.presets, *asked_presets])),
                 list(datasets or table.datasets), Speed.for_device(device, speed))
    if rows:
        labels = {spec.row.label for spec in specs}
        if set(rows) - labels:
            raise ValueError(f"no row {sorted(set(rows) - labels)} in {table.id} at {profile.name}; "
                             f"rows: {', '.join(sorted(labels))}")
    # verifies every file (and fails here, once, before any work) and keys each cell on the data it reads; a plan
    # that only looks (`missing_ok`) keys a missing data set's cells on its name: none is stored, all would run
    identities, missing = {}, {}
    for name in dict.fromkeys(s.dataset for s in specs):
        try:
            identities[name] = ensure(name, data_root, allow_download=download)
        except DataMissing:
            if not missing_ok:
                raise
            identities[name], missing[name] = {"missing": name}, SOURCES[name].download_size()
    store = CellStore(out, table.id, profile.name)
    keyed = [(spec, cell_key(spec, identities[spec.dataset])) for spec in specs]
    # cells committed with a report (a fresh clone, a GPU lease's return) count as stored, forced or not: `force`
    # redoes the selected rows, and the report keeps every other row's cells
    keyless = store.adopt(Path(out) / f"{table.id}.json", dict((key, spec) for spec, key in keyed))
    records: dict[str, dict] = {}
    todo = []
    for spec, key in keyed:
        selected = ((not rows or spec.row.label in rows) and spec.seed < asked_seeds
                    and spec.preset in (None, *asked_presets))
        record = None if force and selected else store.load(spec, key)
        if record is None:
            if selected:
                todo.append((spec, key))
        else:
            records[key] = record
    return Work(keyed, store, records, todo, keyless, missing)


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
    speed: Sequence[str] = (),
    execute: bool = True,
    rows: list[str] | None = None,
    estimate: bool = False,
    estimate_plan: bool = False,
    download: bool = False,
    executor: str | None = None,
    address: str | None = None,
    throughput: bool = False,
) -> TableRun:
    """Run (or resume) every cell of `table` at a profile; finished cells are stored as they complete and
    skipped on a rerun, and a cell that raises is reported in `errors` while the run goes on.

    - `seeds`, `presets`, `rows` (labels), `datasets`: what runs (default: the profile's seeds, the table's
      presets, every row and data set); the result keeps every stored cell of the table's own presets and seeds.
    - `force`: redo the selected cells (their checkpoints discarded).
    - `device`, `speed`: where cells train, and `speed.Speed` options beyond the device's defaults (on CUDA:
      bf16, channels_last, batched members and seeds); each cell's spec records them.
    - `jobs`, `executor`, `address`: how many cells at a time and where (`sharens.execution.executors`; default:
      worker processes when `jobs` > 1, else this process; `address` is a Ray cluster's). Every cell fixes its
      own seed and thread count, so the numbers do not depend on the schedule.
    - `execute` False: nothing runs; the result holds the stored cells of the plan, `errors` names the cells
      still to run, `downloads` the data sets a run would fetch first.
    - `estimate` (with `execute` False): the cost model (`sharens.execution.costs`) prices the cells still to
      run; `estimate_plan` prices every cell of the plan too. A missing data set is then no error.
    - `download`: fetch a data set whose files are missing into the data root first.
    - `throughput` (with `execute`): measure each pair's step times on this device where none are stored
      (`sharens.judge.throughput`; `reproduce` and `regress` ask for it).
    """
    executor = executor or ("processes" if jobs > 1 else "local")
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; known: {', '.join(EXECUTORS)}")
    if executor == "processes" and device.type != "cpu":
        raise ValueError("--jobs > 1 is for CPU runs; a GPU runs one cell at a time (or use --executor ray)")
    work = pending(table, profile_name, out=out, seeds=seeds, presets=presets, device=device, data_root=data_root,
                   force=force, datasets=datasets, speed=speed, rows=rows, download=download,
                   missing_ok=estimate and not execute and not download)
    keyed, store, records, todo = work.keyed, work.store, work.records, work.todo
    if not execute:
        finished = [records[key] for _, key in keyed if key in records]
        waiting = [f"not run yet: {s.dataset} / {s.row.label} / {s.preset or 'classic'} / seed {s.seed}"
                   for s, _ in todo]
        run = TableRun(finished, waiting, Outcomes.from_store(store, finished), planned=len(keyed),
                       older=store.older_cells(work.keyless, finished),
                       resumable=len(store.resumable([key for _, key in todo])),
                       throughput=pair_throughput(table, keyed, store, out, device, data_root, measure=False),
                       downloads=work.missing)
        if estimate:  # nothing is trained: FLOPs and this device's calibration, or its finished cells' rates
            costs = CostModel(device, CELL_THREADS, finished=finished)
            shapes = {name: data_shape(name, data_root, missing_ok=True) for name in dict.fromkeys(
                spec.dataset for spec, _ in keyed)}
            used = epochs_used(finished)
            bound = {key: costs.seconds(spec, shapes[spec.dataset]) for spec, key in (keyed if estimate_plan else todo)}
            run.bound_seconds = sum(bound[key] for _, key in todo)
            run.plan_bound_seconds = sum(bound.values()) if estimate_plan else None
            run.estimated_seconds = sum(
                costs.seconds(spec, shapes[spec.dataset], _expected_epochs(spec, used)) for spec, _ in todo)
            run.device_name = costs.device_name
            costs.save()
        return run
    if force:  # redone from the start: a checkpoint may come from code that has changed since
        store.discard_checkpoints([key for _, key in todo])
    for name in dict.fromkeys(spec.dataset for spec, _ in todo):
        load_dataset(name, data_root)  # a file that verifies but does not parse fails here; fills the cache
    errors = []
    options = {"address": address} if address else {}
    with tqdm(total=len(todo), desc=table.id, disable=None) as progress:
        for spec, key, result in EXECUTORS[executor](todo, device, data_root, jobs=jobs,
                                                     checkpoints=store.checkpoints, **options):
            if isinstance(result, BaseException):
                errors.append(f"{spec.dataset} / {spec.row.label} / {spec.preset or 'classic'} / seed {spec.seed}: "
                              f"{type(result).__name__}: {result}")
            else:
                records[key] = store.save(spec, key, *result)
            progress.update()
    finished = [records[key] for _, key in keyed if key in records]
    measured = pair_throughput(table, keyed, store, out, device, data_root, measure=throughput)
    return TableRun(finished, errors, Outcomes.from_store(store, finished), planned=len(keyed),
                    older=store.older_cells(work.keyless, finished), throughput=measured)


def pair_throughput(table: Table, keyed: list[tuple[CellSpec, str]], store: CellStore, out: Path,
                    device: torch.device, data_root: Path | None, measure: bool) -> list[dict]:
    """The step-time measurements (`sharens.judge.throughput`) of the plan's pairs: those stored (or committed with
    the table's report) for any device, and, with `measure`, this device's where it has none yet."""
    folder = store.folder / "throughput"
    committed = _committed_throughput(Path(out) / f"{table.id}.json")
    here = provenance.device_name(device, CELL_THREADS)
    data = PreparedData(device, data_root)
    found = []
    for (dataset, pair, preset), specs in throughput.pair_specs(keyed).items():
        keys = {variant: key for variant, (_, key) in specs.items()}
        candidates = [m for m in [*throughput.stored_all(folder, dataset, pair), *committed]
                      if m["dataset"] == dataset and m["pair"] == pair and m.get("method") == throughput.METHOD
                      and {v: e["cell_key"] for v, e in m["variants"].items()} == keys]
        by_device = {m["device"]: m for m in candidates}
        if measure and here not in by_device:
            key = throughput.measurement_key(specs, here)
            by_device[here] = throughput.save(folder, {
                "dataset": dataset, "pair": pair, "preset": preset, "key": key,
                **timing.measure(specs, data.for_spec(specs["baseline"][0]), device)})
        found += [by_device[name] for name in sorted(by_device)]
    return found


def _committed_throughput(document: Path) -> list[dict]:
    try:
        return json.loads(document.read_text()).get("throughput") or []
    except (OSError, ValueError):
        return []


def _expected_epochs(spec, used: dict[tuple[str, str], float]) -> float | None:
    share = used.get((spec.dataset, spec.row.pair)) if spec.network else None
    return share * spec.network.epochs if share else None
