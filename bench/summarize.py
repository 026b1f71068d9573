"""pytest-benchmark JSON of one `nox -s bench` run -> ratios in results/bench/<device>.{md,json}.

Each ratio is the median over paired rounds of the ratio within a round (the
loops of a round run back to back), with the quartiles of those ratios:

- SE / baseline: our training loop on the SE model over the same loop on its
  baseline (goal: at most 1.05 at the tables' batch of 128).
- Harness overhead: our loop on the baseline over the minimal hand-written loop
  on the same model and tensors (goal: at most 5%).
- channels_last / default layout (CPU only): the baseline in NHWC layout.
- Batched-members speedup: K members trained one after another over the same K
  trained as one batched model.
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

# kind -> [(column, numerator loop, denominator loop, how a ratio is shown)]
RATIOS = {
    "se_over_baseline": [("SE / baseline (goal <= 1.05x)", "se", "baseline", "times"),
                         ("Harness overhead (goal <= 5%)", "baseline", "minimal", "overhead"),
                         ("channels_last / default layout", "channels_last", "baseline", "times")],
    "members": [("Batched-members speedup", "sequential", "batched", "times")],
}
TITLES = {"se_over_baseline": "SE over its baseline, at the table's batch",
          "members": "An independent ensemble's members: one after another over all at once"}


def _quartiles(values: list[float]) -> list[float]:
    """[q1, median, q3]."""
    return statistics.quantiles(values, n=4, method="inclusive")


def _shown(quartiles: list[float], how: str) -> str:
    if how == "overhead":
        return "{1:+.1%} [{0:+.1%}, {2:+.1%}]".format(*(q - 1 for q in quartiles))
    return "{1:.3f}x [{0:.3f}, {2:.3f}]".format(*quartiles)


def rows(raw: dict) -> list[dict]:
    out = []
    for bench in raw["benchmarks"]:
        info = bench["extra_info"]
        seconds = info["seconds"]
        ratios = {column: _quartiles([a / b for a, b in zip(seconds[top], seconds[bottom], strict=True)])
                  for column, top, bottom, _ in RATIOS[info["kind"]] if top in seconds}
        out.append({"model": re.search(r"\[(\w+)\]", bench["name"])[1], "kind": info["kind"],
                    "batch": info["batch"], "steps": info["steps"], "members": info.get("members"),
                    "ms_per_step": {loop: statistics.median(s) / info["steps"] * 1e3 for loop, s in seconds.items()},
                    "ratios": ratios, "seconds": seconds})
    return out


def _table(kind: str, measured: list[dict]) -> str:
    loops = list(measured[0]["seconds"])
    columns = [(c, how) for c, top, _, how in RATIOS[kind] if any(c in r["ratios"] for r in measured)]
    body = [[r["model"], r["batch"], *(f"{r['ms_per_step'][loop]:.1f}" for loop in loops),
             *(_shown(r["ratios"][c], how) if c in r["ratios"] else "" for c, how in columns)] for r in measured]
    headers = ["Model", "Batch", *(f"{loop} ms/step" for loop in loops), *(c for c, _ in columns)]
    return f"## {TITLES[kind]}\n\n" + tabulate(body, headers=headers, tablefmt="github")


def main(raw_path: str, out: str = "results/bench") -> None:
    raw = json.loads(Path(raw_path).read_text())
    extra = raw["benchmarks"][0]["extra_info"]
    name = provenance.device_name(torch.device(extra["device"]), extra["threads"])
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    measured = rows(raw)
    doc = {"device": name, "rounds": len(measured[0]["seconds"][next(iter(measured[0]["seconds"]))]),
           "rows": measured,
           "provenance": {**provenance.environment(), "machine": raw.get("machine_info", {}).get("cpu", {})}}
    Path(out).mkdir(parents=True, exist_ok=True)
    write_json(Path(out) / f"{slug}.json", doc)
    tables = "\n\n".join(_table(kind, [r for r in measured if r["kind"] == kind])
                         for kind in RATIOS if any(r["kind"] == kind for r in measured))
    write_bytes(Path(out, f"{slug}.md"), (
        f"# Training throughput on {name}\n\nEach model is a `full` cell's network, built as the cell builds it, "
        f"trained by the cell's loop at its table's batch on the first rows of its real data, at a cell's thread "
        f"count. {doc['rounds']} paired rounds after a warm-up round (each round runs a model's loops back to "
        f"back, in rotating order; every loop is one epoch from a fresh optimizer). Times per step are medians "
        f"over rounds; ratios are medians of the per-round ratios, with their quartiles in brackets. A member "
        f"loop's step trains all K members. One `nox -s bench` run at git {doc['provenance']['git_revision']}, "
        f"torch {doc['provenance']['versions']['torch']}.\n\n{tables}\n").encode())
    print(tables)


if __name__ == "__main__":
    main(*sys.argv[1:])
