"""A short GPU lease's work: the pending `full` network cells of the image tables, most valuable first,
within a time budget; and the archives that carry its cells back.

A table's pairs' step times (`sharens.judge.throughput`) are measured first: seconds each, and each the answer to a
cost claim on this device. Order of value is the order of the tables given (the command line's `CAMPAIGN`:
Table 3, whose seeds give its first comparable verdict, then Figure 2, then the ResNets), and within a table
the plan's order (seed by seed; where a row's seeds train together as one batched model, as on a GPU, row by
row: see `executors.cell_groups`). A unit starts only if the cost model's bound for it (every epoch cap reached, its
seeds one after another) fits in what is left of the budget, less `RESERVE` for packing; one that does not
is left for the next lease, and the campaign goes on with the units that fit (timing a model for the cost
model counts against the budget too). Finished cells are stored as in any run, so a campaign resumes where
the last one stopped. scikit-learn rows need no GPU and are left to a CPU run.

`pack` puts cell files into at most `MAX_PACKS` tar files of at most `PACK_BYTES` each, what a lease brings
back; `unpack` puts them into a results folder, where the tables' reports are rebuilt from them.
"""

from __future__ import annotations

import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import torch

from sharens.data.shapes import data_shape
from sharens.execution.costs import CostModel
from sharens.execution.executors import EXECUTORS, cell_groups
from sharens.execution.runner import pair_throughput, pending
from sharens.suite.plan import CELL_THREADS
from sharens.suite.table import Table

RESERVE = 60.0  # seconds kept back from the budget for storing and packing
MAX_PACKS = 8  # files a lease brings back
PACK_BYTES = 16 * 2**20  # bytes per file a lease brings back
_TAR_BLOCK = 512


@dataclass
class Campaign:
    finished: list[Path] = field(default_factory=list)  # cell files (record .json and outcomes .npz) written
    left: list[str] = field(default_factory=list)  # cells left for a later lease, with why
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    tables: list[str] = field(default_factory=list)  # tables with newly finished cells


def run_campaign(tables: list[Table], *, device: torch.device, budget_s: float, out: Path,
                 data_root: Path | None = None, speed: Sequence[str] = (), profile: str = "full") -> Campaign:
    """Run the pending network cells of `tables` at `profile`, in order, as long as each fits the budget."""
    start = time.monotonic()
    deadline = start + budget_s - RESERVE
    result = Campaign()
    for table in tables:
        work = pending(table, profile, out=out, device=device, data_root=data_root, speed=speed)
        costs = CostModel(device, CELL_THREADS, finished=list(work.records.values()))
        if time.monotonic() < deadline:  # the pairs' step times first: seconds a pair, and each a verdict
            before = set(work.store.throughput_files())
            pair_throughput(table, work.keyed, work.store, out, device, data_root, measure=True)
            result.finished += sorted(set(work.store.throughput_files()) - before)
        for unit in cell_groups([(s, k) for s, k in work.todo if s.network is not None]):
            spec = unit[0][0]
            seeds = ", ".join(str(s.seed) for s, _ in unit)
            name = f"{table.id} / {spec.dataset} / {spec.row.label} / {spec.preset} / seed {seeds}"
            if time.monotonic() >= deadline:  # not even a model's timing fits any more
                result.left.append(f"{name}: the budget is spent")
                continue
            # seeds trained together as one batched model cost at most what they cost one after another
            bound = sum(costs.seconds(s, data_shape(s.dataset, data_root)) for s, _ in unit)
            costs.save()
            if time.monotonic() + bound > deadline:
                result.left.append(f"{name}: needs up to {bound:.0f} s, {max(0, deadline - time.monotonic()):.0f} "
                                   "s left")
                continue
            for spec, key, outcome in EXECUTORS["local"](unit, device, data_root):
                if isinstance(outcome, BaseException):
                    result.failed.append(f"{name}: {type(outcome).__name__}: {outcome}")
                    continue
                work.store.save(spec, key, *outcome)
                record_path = work.store.path(spec, key)
                result.finished += [p for p in (record_path, record_path.with_suffix(".npz")) if p.exists()]
                if table.id not in result.tables:
                    result.tables.append(table.id)
    result.seconds = time.monotonic() - start
    return result


def pack(files: list[Path], root: Path, folder: Path) -> tuple[list[Path], list[Path]]:
    """(archives written, files that did not fit): `files` (under `root`) into at most `MAX_PACKS` tar files
    of at most `PACK_BYTES` in `folder`, a cell's record and outcomes kept together."""
    folder.mkdir(parents=True, exist_ok=True)
    groups: list[list[Path]] = [[]]
    sizes = [2 * _TAR_BLOCK]  # a tar ends with two empty blocks
    cells: dict[Path, list[Path]] = {}
    for path in files:
        cells.setdefault(path.with_suffix(""), []).append(path)
    left: list[Path] = []
    for cell in cells.values():
        size = sum(_TAR_BLOCK + -(-p.stat().st_size // _TAR_BLOCK) * _TAR_BLOCK for p in cell)
        if sizes[-1] + size > PACK_BYTES:
            if len(groups) == MAX_PACKS or size + 2 * _TAR_BLOCK > PACK_BYTES:
                left += cell
                continue
            groups.append([])
            sizes.append(2 * _TAR_BLOCK)
        groups[-1] += cell
        sizes[-1] += size
    archives = []
    for i, group in enumerate(g for g in groups if g):
        archive = folder / f"cells-{i + 1:02d}.tar"
        with tarfile.open(archive, "w", format=tarfile.USTAR_FORMAT) as tar:
            for path in group:
                tar.add(path, arcname=str(path.relative_to(root)))
        archives.append(archive)
    return archives, left


def unpack(archives: list[Path], out: Path) -> list[tuple[str, str]]:
    """Extract cell archives into `out` (only `cells/<table>/<profile>/<file>` members, and the pairs' step times
    in `cells/<table>/<profile>/throughput/`); return the (table, profile) pairs they held."""
    found = []
    for archive in archives:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                parts = PurePosixPath(member.name).parts
                cell = len(parts) == 4 or (len(parts) == 5 and parts[3] == "throughput")  # a pair's step times
                if not (member.isfile() and cell and parts[0] == "cells" and ".." not in parts):
                    raise ValueError(f"{archive}: {member.name!r} is not a cell file (cells/<table>/<profile>/..)")
            tar.extractall(out, members=members, filter="data")
            found += [PurePosixPath(m.name).parts[1:3] for m in members]
    return list(dict.fromkeys(found))
