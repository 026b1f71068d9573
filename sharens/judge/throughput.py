"""Throughput claims: SE trains and predicts at about its backbone's cost, and far below an independent ensemble's.

The paper's cost claims are about step cost, so they are measured as steps, never read off cells' wall times
(which mix step cost with the epochs a stopping rule kept and with whatever else shared the machine). For each
pair of a table, on its data set, `timing.measure` builds the networks its cells build (baseline, SE, DSN and the
independent ensemble where the pair has them) and times their training loops (the cell's own loop, at the
table's batch, on the first rows of the cell's data) and their prediction, in paired rounds: each round runs
every loop back to back, in an order that rotates from round to round, so a busy machine's slow spells hit a
round's loops alike and cancel in its ratios. A ratio's interval is Student's t over the rounds' log-ratios.

A measurement is stored like a cell, under a key that hashes the specs it timed, the device and `METHOD`;
a report judges it by the table's `benchmark.ThroughputTolerance`, beside the FLOP ratio (the floor a step's cost can
reach): `COST_CLAIMS` holds the claims, one entry each.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

from sharens.atomic import write_json
from sharens.suite.plan import CellSpec
from sharens.suite.store import file_name
from sharens.suite.table import ThroughputTolerance

METHOD = 2  # bump when what a measurement does changes: stored measurements of another method are redone
ROUNDS = 7
ROUND_SECONDS = 0.25  # each training loop runs about this long in a round (its steps set from one timed step)
MEASURED = ("baseline", "se", "dsn", "independent")  # the variants whose networks are timed (snapshots: baseline's)
WITHIN, EXCEEDS, FALLS_SHORT, INCONCLUSIVE = "within tolerance", "exceeds", "falls short", "inconclusive"


@dataclass(frozen=True)
class CostClaim:
    name: str
    title: str
    short: str  # for README's results block
    numerator: str  # variant
    denominator: str  # variant
    phase: str  # "train" or "predict"
    at_most: bool  # the ratio must stay below the bound (else: above it)

    def bound(self, tolerance: ThroughputTolerance, flop_ratio: float | None, members: int) -> float:
        if self.at_most:
            return (flop_ratio or 1.0) + tolerance.se_margin
        return members - tolerance.ensemble_margin


COST_CLAIMS = {c.name: c for c in (
    CostClaim("se_train_step", "SE's training step over its baseline's", "SE / baseline, training step", "se",
              "baseline", "train", True),
    CostClaim("se_predict", "SE's prediction over its baseline's", "SE / baseline, prediction", "se", "baseline",
              "predict", True),
    CostClaim("ensemble_over_se", "an independent ensemble's training step over SE's",
              "independent ensemble / SE, training step", "independent", "se", "train", False),
)}


def measurement_key(specs: dict[str, tuple[CellSpec, str]], device_name: str) -> str:
    blob = json.dumps({"cells": {v: key for v, (_, key) in sorted(specs.items())}, "device": device_name,
                       "method": METHOD, "rounds": ROUNDS, "round_seconds": ROUND_SECONDS}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def pair_specs(keyed: list[tuple[CellSpec, str]]) -> dict[tuple[str, str, str], dict[str, tuple[CellSpec, str]]]:
    """{(data set, pair, preset): {variant: (spec, key)}} of the measured variants, each at its first seed and
    the first preset a pair ran at: what one measurement times."""
    found: dict[tuple[str, str], dict[str, tuple[CellSpec, str]]] = {}
    presets: dict[tuple[str, str], str] = {}
    for spec, key in keyed:
        if spec.network is None or spec.row.variant not in MEASURED or spec.seed != 0:
            continue
        where = (spec.dataset, spec.row.pair)
        presets.setdefault(where, spec.preset)
        if spec.preset == presets[where]:
            found.setdefault(where, {}).setdefault(spec.row.variant, (spec, key))
    return {(d, p, presets[(d, p)]): v for (d, p), v in found.items() if {"baseline", "se"} <= v.keys()}


def ratio_interval(numerator: list[float], denominator: list[float]) -> dict:
    """Median ratio over paired rounds, and the 95% t interval of the mean log-ratio, exponentiated."""
    logs = np.log(np.asarray(numerator) / np.asarray(denominator))
    half = scipy_stats.t.ppf(0.975, len(logs) - 1) * logs.std(ddof=1) / math.sqrt(len(logs))
    return {"ratio": float(np.exp(np.median(logs))), "low": float(np.exp(logs.mean() - half)),
            "high": float(np.exp(logs.mean() + half))}


def judge(found: dict, tolerance: ThroughputTolerance) -> list[dict]:
    """Every cost claim the measurement can answer, with its ratio, interval, FLOP ratio, bound and verdict."""
    variants, out = found["variants"], []
    for claim in COST_CLAIMS.values():
        top, bottom = variants.get(claim.numerator), variants.get(claim.denominator)
        if not top or not bottom:
            continue
        measured = ratio_interval(top[f"{claim.phase}_seconds"], bottom[f"{claim.phase}_seconds"])
        flops = (top["flops_per_sample"] / bottom["flops_per_sample"]
                 if top["flops_per_sample"] and bottom["flops_per_sample"] else None)
        bound = claim.bound(tolerance, flops if claim.at_most else None, top["members"])
        if claim.at_most:
            verdict = WITHIN if measured["high"] <= bound else EXCEEDS if measured["low"] > bound else INCONCLUSIVE
        else:
            verdict = WITHIN if measured["low"] >= bound else FALLS_SHORT if measured["high"] < bound \
                else INCONCLUSIVE
        out.append({"claim": claim.name, "title": claim.title, **measured, "flop_ratio": flops,
                    "bound": bound, "at_most": claim.at_most, "verdict": verdict})
    return out


def stored_all(folder: Path, dataset: str, pair: str) -> list[dict]:
    """Every stored measurement of one pair on one data set, of this `METHOD`, any device."""
    found = []
    for path in sorted(folder.glob(f"{dataset}__{file_name(pair)}__*.json")):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if entry.get("method") == METHOD:
            found.append(entry)
    return found


def save(folder: Path, found: dict) -> dict:
    write_json(folder / f"{found['dataset']}__{file_name(found['pair'])}__{found['key']}.json", found)
    return found
