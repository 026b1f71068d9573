"""How fast a newcomer's first command answers, and how good its estimates are -> results/bench/dry_run.{md,json}.

1. The cold-cache dry run: `python -m sharens reproduce --dry-run --table T` for every table, each in a fresh
   process with an empty cache dir, at the committed results (what a fresh clone sees).
2. The cost model's estimate, from FLOPs and this device's calibration only (no finished cell helps it), against
   the training time of every committed cell that ran on this device with the same thread count, at its own
   epochs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from tabulate import tabulate

from benchmarks import TABLES, get_table
from sharens import provenance
from sharens.atomic import write_bytes, write_json
from sharens.data.shapes import data_shape
from sharens.execution.costs import CostModel
from sharens.execution.runner import pending
from sharens.suite.plan import CELL_THREADS

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "bench"
CPU = torch.device("cpu")


def cold_dry_runs() -> list[dict]:
    rows = []
    for table in TABLES:
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "sharens", "reproduce", "--dry-run", "--table", table],
                                  cwd=ROOT, env={**os.environ, "SHARENS_CACHE": cache}, capture_output=True, text=True)
            rows.append({"table": table, "seconds": round(time.perf_counter() - start, 2), "exit": done.returncode,
                         "plan": done.stdout.strip().splitlines()})
    return rows


def estimate_errors() -> list[dict]:
    """Estimate / wall time of every committed cell run here (one thread a cell), FLOPs and calibration only."""
    here = provenance.device_name(CPU, CELL_THREADS)
    costs = CostModel(CPU, CELL_THREADS, path=Path(tempfile.mkdtemp()) / "costs.json")
    found = []
    for table_id in TABLES:
        table = get_table(table_id)
        for profile in table.profiles:
            out = ROOT / "results" / ("" if profile == "full" else profile)
            if not (out / f"{table_id}.json").is_file():
                continue
            work = pending(table, profile, out=out)
            for spec, key in work.keyed:
                record = work.records.get(key)
                if not record or (record.get("provenance") or {}).get("device") != here:
                    continue
                epochs = len(record["epoch_loss"]) if spec.network and record.get("epoch_loss") else None
                estimate = costs.seconds(spec, data_shape(spec.dataset), epochs)
                wall = record["train_seconds"]  # across sittings, where a cell resumed from a checkpoint
                found.append({"table": table_id, "profile": profile, "row": spec.row.label, "seed": spec.seed,
                              "estimate_s": round(estimate, 1), "wall_s": round(wall, 1),
                              "ratio": round(estimate / wall, 3)})
    return found


def main() -> None:
    device = provenance.device_name(CPU, CELL_THREADS)
    runs = cold_dry_runs()
    errors = estimate_errors()
    ratios = [e["ratio"] for e in errors]
    summary = {"device": device, "git_revision": provenance.git_revision(), "dry_runs": runs,
               "dry_run_total_s": round(sum(r["seconds"] for r in runs), 1), "estimates": errors,
               "estimate_ratio_quartiles": statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios}
    write_json(OUT / "dry_run.json", summary)
    lines = [f"# Cold-cache dry run and cost estimates on {device}", "",
             f"Every table's `reproduce --dry-run`, each with an empty cache dir, at git {summary['git_revision']}: "
             f"{summary['dry_run_total_s']} s in all.", "",
             tabulate([[r["table"], r["seconds"], r["exit"]] for r in runs], ["Table", "Seconds", "Exit"],
                      tablefmt="github"), "",
             f"The cost model's estimate (FLOPs and this device's calibration; no finished cell helping) over the "
             f"training time of the {len(errors)} committed cells that ran on this device, at their own epochs: "
             + ("quartiles " + ", ".join(f"{q:.2f}" for q in summary["estimate_ratio_quartiles"])
                if errors else "none ran here") + ".", ""]
    if errors:
        lines += [tabulate([[e["table"], e["profile"], e["row"], e["seed"], e["estimate_s"], e["wall_s"], e["ratio"]]
                            for e in errors], ["Table", "Profile", "Row", "Seed", "Estimate (s)", "Trained (s)",
                                               "Estimate / trained"], tablefmt="github"), ""]
    write_bytes(OUT / "dry_run.md", "\n".join(lines).encode())
    print("\n".join(lines[:6]))


if __name__ == "__main__":
    main()
