"""Rerun committed cells on this machine: how far its numbers drift from the committed ones, and whether any
row or claim verdict would change if the reruns replaced them.

Another CPU (or BLAS, or thread schedule) rounds differently, and a network's training amplifies a rounding
difference into another stopping epoch or another test row flipped. `verify` measures that drift on a sample of
a table's committed cells, drawn reproducibly, rerun with exactly their specs (the same keys), stored apart
from the committed results (`<out>/cells/`, so a killed run resumes), and writes what it found to
`<out>/<table>.<profile>.json`. A changed verdict is the signal: the command then exits non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sharens import provenance
from sharens.atomic import write_json
from sharens.execution.executors import EXECUTORS
from sharens.execution.runner import CPU, pending
from sharens.judge import document
from sharens.suite.store import CellStore, Outcomes
from sharens.suite.table import Table

DEFAULT_OUT = Path("results") / "verify"


@dataclass(frozen=True)
class Sample:
    """Which committed cells to rerun: `size` of them, drawn by `seed`, or the cheapest first."""

    size: int = 20
    seed: int = 0
    cheapest: bool = False

    def __post_init__(self):
        if self.size < 1:
            raise ValueError(f"--sample must be at least 1 (got {self.size})")

    def draw(self, records: list[dict]) -> list[dict]:
        if self.cheapest:
            chosen = sorted(records, key=lambda r: (r["provenance"]["wall_seconds"], r["key"]))[:self.size]
        else:
            order = np.random.default_rng(self.seed).permutation(len(records))
            chosen = [records[i] for i in order[:self.size]]
        keys = {r["key"] for r in chosen}
        return [r for r in records if r["key"] in keys]  # in plan order


def verify(table: Table, profile: str, *, results: Path, sample: Sample, data_root: Path | None = None,
           out: Path = DEFAULT_OUT, jobs: int = 1, force: bool = False) -> dict:
    """Rerun a sample of `table`'s committed cells at `profile` (from the results folder `results`) on this CPU;
    returns (and writes) {cells: [committed vs rerun], drift: summary, changes: verdicts that would change}."""
    work = pending(table, profile, out=results, data_root=data_root)
    specs = dict((key, spec) for spec, key in work.keyed)
    committed = [work.records[key] for _, key in work.keyed if key in work.records]
    finished = [r for r in committed if r["status"] == "ok"]
    if not finished:
        raise ValueError(f"{table.id} at {profile} has no committed cells under {results} to verify")
    chosen = sample.draw(finished)
    store = CellStore(out, table.id, profile)
    reruns = {r["key"]: None if force else store.load(specs[r["key"]], r["key"]) for r in chosen}
    todo = [(specs[key], key) for key, found in reruns.items() if found is None]
    executor = "processes" if jobs > 1 else "local"
    errors = []
    for spec, key, result in EXECUTORS[executor](todo, CPU, data_root, jobs=jobs, checkpoints=store.checkpoints):
        if isinstance(result, BaseException):
            errors.append(f"{spec.row.label} seed {spec.seed}: {type(result).__name__}: {result}")
        else:
            reruns[key] = store.save(spec, key, *result)
    if errors:
        raise RuntimeError("cells failed to rerun: " + "; ".join(errors))
    before = Outcomes.from_store(work.store, committed)
    after = Outcomes({**before.by_key, **Outcomes.from_store(store, list(reruns.values())).by_key})
    replaced = [reruns.get(r["key"]) or r for r in committed]
    changes = verdict_changes(document.build(table, profile, committed, before),
                              document.build(table, profile, replaced, after))
    cells = [_compare(r, reruns[r["key"]], before.get(r), after.get(reruns[r["key"]])) for r in chosen]
    found = {"table": table.id, "profile": profile, "sample": {"size": sample.size, "seed": sample.seed,
                                                                 "cheapest": sample.cheapest},
             "machine": provenance.environment(), "device": provenance.device_name(CPU, 1),
             "committed_devices": sorted({r["provenance"]["device"] for r in chosen}),
             "cells": cells, "drift": summarize(cells), "changes": changes}
    write_json(Path(out) / f"{table.id}.{profile}.json", found)
    return found


def _compare(old: dict, new: dict, old_rows: dict | None, new_rows: dict | None) -> dict:
    """One cell, committed against rerun: accuracy, its drift, the epochs kept, and whether the two are the same
    bit for bit (the same per-row outcomes)."""
    rows_differ = None
    if old_rows is not None and new_rows is not None:
        rows_differ = int(np.sum(old_rows["predicted"] != new_rows["predicted"]))
    return {"model": old["model"], "dataset": old["dataset"], "preset": old["preset"], "seed": old["seed"],
            "key": old["key"], "committed": old["accuracy"], "rerun": new["accuracy"],
            "drift": new["accuracy"] - old["accuracy"],
            "identical": old.get("outcomes", {}).get("sha256") == new.get("outcomes", {}).get("sha256"),
            "test_rows_differ": rows_differ, "n_test": old.get("n_test"),
            "epochs": [len(old.get("epoch_loss") or []), len(new.get("epoch_loss") or [])],
            "best_epoch": [old.get("best_epoch"), new.get("best_epoch")],
            "rerun_seconds": new["provenance"]["wall_seconds"]}


def summarize(cells: list[dict]) -> dict:
    """The drift of a sample: how many cells are identical, stopped at another epoch, and by how much their
    accuracies moved (points)."""
    drift = np.abs([c["drift"] for c in cells])
    return {"cells": len(cells), "identical": sum(c["identical"] for c in cells),
            "other_epochs": sum(c["epochs"][0] != c["epochs"][1] or c["best_epoch"][0] != c["best_epoch"][1]
                                for c in cells),
            "mean_abs_drift": float(drift.mean()), "max_abs_drift": float(drift.max()),
            "median_abs_drift": float(np.median(drift))}


def verdict_changes(before: dict, after: dict) -> list[dict]:
    """Every row and claim whose verdict (or claim magnitude) differs between two documents of one table."""
    def rows(doc):
        return {(r["dataset"], r["model"], r.get("preset")): r.get("verdict") for r in doc["rows"]}

    def claims(doc):
        return {(c["claim"], c["dataset"], c["pair"], c["preset"]): (c["verdict"], c.get("magnitude"))
                for c in doc["claims"]}

    changes = []
    for kind, (old, new) in (("row", (rows(before), rows(after))), ("claim", (claims(before), claims(after)))):
        for key in old:
            if old[key] != new.get(key):
                changes.append({"kind": kind, "what": " / ".join(str(k) for k in key if k is not None),
                                "committed": old[key], "rerun": new.get(key)})
    return changes


def lines(found: dict) -> list[str]:
    """What `python -m sharens verify` prints."""
    out = [f"{found['table']} at {found['profile']}: {len(found['cells'])} committed cells (run on "
           f"{', '.join(found['committed_devices'])}) rerun on {found['device']}"]
    for c in found["cells"]:
        rows = "" if c["test_rows_differ"] is None else f", {c['test_rows_differ']} of {c['n_test']} rows differ"
        out.append(f"  {c['dataset']} / {c['model']} / {c['preset'] or 'classic'} / seed {c['seed']}: "
                   f"{c['committed']:.2f} -> {c['rerun']:.2f} ({c['drift']:+.2f}"
                   + (", identical" if c["identical"] else f"{rows}, epochs {c['epochs'][0]} -> {c['epochs'][1]}")
                   + ")")
    d = found["drift"]
    out.append(f"drift: {d['identical']}/{d['cells']} cells identical, {d['other_epochs']} stopped at another epoch, "
               f"|drift| median {d['median_abs_drift']:.2f}, mean {d['mean_abs_drift']:.2f}, "
               f"max {d['max_abs_drift']:.2f} points")
    if found["changes"]:
        out.append(f"{len(found['changes'])} verdicts would change:")
        out += [f"  {c['kind']} {c['what']}: {c['committed']} -> {c['rerun']}" for c in found["changes"]]
    else:
        out.append("no row or claim verdict would change")
    return out
