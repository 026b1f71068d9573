"""CI regression check: rerun the smoke profile and compare with the committed reference.

`python -m sharens.regress [--reference results/smoke] [--tolerance 5] [--out DIR]` runs every
implemented table at `smoke` (`python -m sharens reproduce --profile smoke`, the command a user runs)
into a temporary folder, or into DIR to keep the cells and reports, and fails when a row's
mean accuracy moved by more than the tolerance or its status changed, or when SE's
step-time ratio over its baseline (training or prediction, `sharens.judge.throughput`)
rose past the reference's by more than the throughput tolerance. The smoke
test sets are a few hundred rows, so one sample is worth 0.4-0.8 points; the
tolerance absorbs floating-point differences between CPUs, not real changes.
`.ci/run` keeps the run, and the slow tests read it (`SHARENS_SMOKE_RUN`) instead of training
the same smoke cells again.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from benchmarks import TABLES
from sharens import cli


def compare(reference: dict, current: dict, tolerance: float) -> list[str]:
    """Differences that matter between two table documents, as readable lines."""
    def key(row):
        return (row["dataset"], row["model"], row["preset"])

    ref_rows = {key(r): r for r in reference["rows"] if r["variant"] != "cited"}
    cur_rows = {key(r): r for r in current["rows"] if r["variant"] != "cited"}
    problems = [f"{k}: missing from this run" for k in ref_rows.keys() - cur_rows.keys()]
    problems += [f"{k}: new row, not in the reference" for k in cur_rows.keys() - ref_rows.keys()]
    for k in ref_rows.keys() & cur_rows.keys():
        ref, cur = ref_rows[k], cur_rows[k]
        if ref["status"] != cur["status"]:
            problems.append(f"{k}: status {ref['status']!r} -> {cur['status']!r}")
        elif ref["accuracy"]["mean"] is not None:
            delta = cur["accuracy"]["mean"] - ref["accuracy"]["mean"]
            if abs(delta) > tolerance:
                problems.append(f"{k}: accuracy {ref['accuracy']['mean']:.2f} -> "
                                f"{cur['accuracy']['mean']:.2f} ({delta:+.2f} > ±{tolerance:g})")
    return problems


# how much SE's step-time ratio over its baseline may rise above the reference's before CI fails: a ratio, never
# an absolute time, so another CPU's speed does not count; the rise must also clear both rounds' intervals
THROUGHPUT_TOLERANCE = 0.15
WATCHED = ("se_train_step", "se_predict")


def compare_throughput(reference: dict, current: dict, tolerance: float = THROUGHPUT_TOLERANCE) -> list[str]:
    """SE's cost claims whose ratio rose past the reference's: the median over rounds above the reference's
    ratio x (1 + `tolerance`), and the whole interval above the reference's; and those this run did not measure."""
    def ratios(doc):
        return {(m["dataset"], m["pair"], c["claim"]): c for m in doc.get("throughput") or [] for c in m["claims"]
                if c["claim"] in WATCHED}

    before, now = ratios(reference), ratios(current)
    problems = [f"{key[:2]}: {before[key]['title']}: in the reference, not measured by this run"
                for key in sorted(before.keys() - now.keys())]
    for key in sorted(before.keys() & now.keys()):
        was, new = before[key], now[key]
        if new["ratio"] > was["ratio"] * (1 + tolerance) and new["low"] > was["high"]:
            problems.append(f"{key[:2]}: {new['title']} {was['ratio']:.3f}x [{was['low']:.3f}, {was['high']:.3f}] "
                            f"-> {new['ratio']:.3f}x [{new['low']:.3f}, {new['high']:.3f}], more than "
                            f"{tolerance:.0%} slower")
    return problems


def smoke_command(tables: list[str] | tuple[str, ...], out: Path, jobs: int, data_root: Path | None) -> list[str]:
    """The `python -m sharens` arguments of the smoke run regress checks (the slow tests run the same)."""
    return (["reproduce", *(arg for table in tables for arg in ("--table", table)), "--profile", "smoke",
             "--device", "cpu", "--out", str(out), "--jobs", str(jobs)]
            + (["--data-root", str(data_root)] if data_root else []))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sharens.regress", description=__doc__)
    p.add_argument("--reference", type=Path, default=Path("results/smoke"))
    p.add_argument("--tolerance", type=float, default=5.0)
    p.add_argument("--throughput-tolerance", type=float, default=THROUGHPUT_TOLERANCE,
                   help="relative rise of SE's step-time ratios over the reference's that fails (default 0.15)")
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--jobs", type=int, default=1, help="CPU worker processes (the numbers do not depend on it)")
    p.add_argument("--out", type=Path, default=None,
                   help="keep the run's cells and reports in this new folder (default: a temporary one)")
    args = p.parse_args(argv)
    if args.out and args.out.exists() and any(args.out.iterdir()):
        p.error(f"--out {args.out} is not empty: a regression check trains every smoke cell afresh, and a "
                "folder with stored cells would only resume them; name a new folder")
    failed = False
    with tempfile.TemporaryDirectory() as temporary:
        out = args.out or Path(temporary)
        for table_id in TABLES:
            ref_path = args.reference / f"{table_id}.json"
            if not ref_path.exists():
                print(f"FAIL {table_id}: no reference at {ref_path}; create it with "
                      f"`python -m sharens reproduce --table {table_id} --profile smoke --out {args.reference}`")
                failed = True
                continue
            failed_run = cli.main(smoke_command([table_id], out, args.jobs, args.data_root))
            problems = ["the smoke run failed (its errors are above)"] if failed_run else []
            written = out / f"{table_id}.json"
            current = json.loads(written.read_text()) if written.exists() else None
            if current is not None:
                reference = json.loads(ref_path.read_text())
                problems += (compare(reference, current, args.tolerance)
                             + compare_throughput(reference, current, args.throughput_tolerance))
            print(f"{'FAIL' if problems else 'ok  '} {table_id}"
                  + (f": {len(current['cells'])} cells" if current is not None else ""), flush=True)
            for line in problems:
                print(f"     {line}")
            failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
