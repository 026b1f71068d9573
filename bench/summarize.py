"""pytest-benchmark JSON of one `nox -s bench` run -> ratios in results/bench/<device>.{md,json}.

SE / baseline: our training loop on the SE model over the same loop on the
baseline (the issue's goal: at most 1.10x). Harness overhead: our loop on the
baseline over the minimal hand-written loop on the same model and tensors (goal:
at most 5%). Each ratio is the median over paired rounds of the ratio within a
round (the loops of a round run back to back), with the spread of those ratios.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

import torch
from tabulate import tabulate

from sharens import provenance
from sharens.atomic import write_bytes, write_json


def _quartiles(values: list[float]) -> list[float]:
    """[q1, median, q3]."""
    return statistics.quantiles(values, n=4, method="inclusive")


def ratios(raw: dict) -> list[dict]:
    rows = []
    for bench in raw["benchmarks"]:
        seconds = bench["extra_info"]["seconds"]
        se_over_baseline = _quartiles([s / b for s, b in zip(seconds["se"], seconds["baseline"], strict=True)])
        overhead = _quartiles([b / m - 1 for b, m in zip(seconds["baseline"], seconds["minimal"], strict=True)])
        rows.append({
            "model": re.search(r"\[(\w+)\]", bench["name"])[1],
            **{f"{loop}_s": statistics.median(s) for loop, s in seconds.items()},
            "se_over_baseline": se_over_baseline[1], "se_over_baseline_quartiles": se_over_baseline,
            "harness_overhead": overhead[1], "harness_overhead_quartiles": overhead,
            "seconds": seconds,
        })
    return rows


def main(raw_path: str, out: str = "results/bench") -> None:
    raw = json.loads(Path(raw_path).read_text())
    extra = raw["benchmarks"][0]["extra_info"]
    name = provenance.device_name(torch.device(extra["device"]))
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    rows = ratios(raw)
    rounds = len(rows[0]["seconds"]["baseline"])
    doc = {"device": name, "batch": extra["batch"], "steps_per_round": extra["steps"], "rounds": rounds, "rows": rows,
           "provenance": {**provenance.environment(), "machine": raw.get("machine_info", {}).get("cpu", {})}}
    Path(out).mkdir(parents=True, exist_ok=True)
    write_json(Path(out) / f"{slug}.json", doc)

    def ms(seconds: float) -> str:
        return f"{seconds / extra['steps'] * 1e3:.1f}"

    body = [[r["model"], ms(r["baseline_s"]), ms(r["se_s"]), ms(r["minimal_s"]),
             "{1:.3f}x [{0:.3f}, {2:.3f}]".format(*r["se_over_baseline_quartiles"]),
             "{1:+.1%} [{0:+.1%}, {2:+.1%}]".format(*r["harness_overhead_quartiles"])] for r in rows]
    table = tabulate(body, headers=["Model", "Baseline ms/step", "SE ms/step", "Minimal loop ms/step",
                                    "SE / baseline (goal <= 1.10x)", "Harness overhead (goal <= 5%)"],
                     tablefmt="github")
    write_bytes(Path(out, f"{slug}.md"), (
        f"# Train-step throughput on {name}\n\nBatch {extra['batch']}, {extra['steps']} steps per loop, "
        f"{rounds} paired rounds after a warm-up round (each round runs our loop on the baseline, our loop on "
        f"SE and a minimal hand-written loop on the baseline model back to back, in rotating order). Times "
        f"are medians over rounds; ratios are medians of the per-round ratios, with their quartiles in brackets. "
        f"One `nox -s bench` run at git {doc['provenance']['git_revision']}, "
        f"torch {doc['provenance']['versions']['torch']}.\n\n{table}\n").encode())
    print(table)


if __name__ == "__main__":
    main(*sys.argv[1:])
