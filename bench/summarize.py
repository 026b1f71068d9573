"""pytest-benchmark JSON of one `nox -s bench` run -> ratios in results/bench/<device>.{md,json}.

SE / baseline: our training loop on the SE model over the same loop on the
baseline (the issue's goal: at most 1.10x). Harness overhead: our loop on the
baseline over the minimal hand-written loop on the same model and tensors (goal:
at most 5%). Medians of the rounds; both numbers of a ratio come from one run.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from tabulate import tabulate

from sharens import provenance
from sharens.cells import write_json_atomic


def ratios(raw: dict) -> list[dict]:
    median = {b["name"]: b["stats"]["median"] for b in raw["benchmarks"]}
    rows = []
    for name in sorted({re.search(r"\[(\w+)", key)[1] for key in median}):
        base, se = median[f"test_harness[{name}-baseline]"], median[f"test_harness[{name}-se]"]
        minimal = median[f"test_minimal_loop[{name}]"]
        rows.append({"model": name, "baseline_s": base, "se_s": se, "minimal_s": minimal,
                     "se_over_baseline": se / base, "harness_overhead": base / minimal - 1})
    return rows


def main(raw_path: str, out: str = "results/bench") -> None:
    raw = json.loads(Path(raw_path).read_text())
    extra = raw["benchmarks"][0]["extra_info"]
    device = extra["device"]
    name = provenance.device_name(__import__("torch").device(device))
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    rows = ratios(raw)
    rounds = raw["benchmarks"][0]["stats"]["rounds"]
    doc = {"device": name, "batch": extra["batch"], "steps_per_round": extra["steps"], "rounds": rounds, "rows": rows,
           "provenance": {**provenance.environment(), "machine": raw.get("machine_info", {}).get("cpu", {})}}
    Path(out).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(out) / f"{slug}.json", doc)
    body = [[r["model"], f"{r['baseline_s'] / extra['steps'] * 1e3:.1f}", f"{r['se_s'] / extra['steps'] * 1e3:.1f}",
             f"{r['se_over_baseline']:.3f}x", f"{r['minimal_s'] / extra['steps'] * 1e3:.1f}",
             f"{100 * r['harness_overhead']:+.1f}%"] for r in rows]
    table = tabulate(body, headers=["Model", "Baseline ms/step", "SE ms/step", "SE / baseline (goal <= 1.10x)",
                                    "Minimal loop ms/step", "Harness overhead (goal <= 5%)"], tablefmt="github")
    Path(out, f"{slug}.md").write_text(
        f"# Train-step throughput on {name}\n\nBatch {extra['batch']}, {extra['steps']} steps per round, median "
        f"of {rounds} rounds after a warm-up, one `nox -s bench` run at git {doc['provenance']['git_revision']}, "
        f"torch {doc['provenance']['versions']['torch']}.\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main(*sys.argv[1:])
