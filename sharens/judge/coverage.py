"""The simulated coverage of the interval every verdict rests on (`sharens.judge.stats`): how often its 95% interval
holds the truth, and how wide it is against an oracle's, at 2-10 seeds.

A simulated test set has `rows` rows; row i has a difficulty q_i ~ Beta (mean `ACCURACY`), drawn afresh for
each replicate, so the test set's own error is shared by the seeds, as in a real table. Seed s shifts every
row's chance of being right by d_s q_i (1 - q_i), d_s ~ N(0, tau) clipped to [-1, 1] (symmetric, so the
truth stays E[q]), and the seed gets row i right when u_si < q_i + d_s q_i (1 - q_i). A paired claim gives SE
the rows' chances q_i + GAIN q_i (1 - q_i), its own seed shifts, and the same u_si as its baseline (the two
are right or wrong together on most rows, as a network and its SE variant are); its true gain is
GAIN E[q (1 - q)]. Three regimes set tau so that the seeds' shifts add a quarter, once, or four times the
test-row noise of the mean (each seed's own luck on the rows comes on top; the cases record the ratio measured).

`python -m sharens coverage` writes the result to `sharens/coverage.json`, which every report quotes; a test
reruns the simulation, requires >= 93% coverage everywhere and a width within the price of estimating a
variance from S seeds, and checks that the stored file is current.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

from sharens.atomic import write_json
from sharens.judge import stats

ACCURACY, CONCENTRATION, GAIN = 0.8, 1.0, 0.2
ROWS = 2000
SEEDS = (2, 3, 5, 10)
REGIMES = {"test rows dominate": 0.25, "mixed": 1.0, "seeds dominate": 4.0}  # seed noise / test-row noise
REPLICATES = 1000
SIMULATION_SEED = 0
STORED = Path(__file__).with_name("coverage.json")
# the width a method may have, relative to an oracle's (a normal interval with the true spread): the price of a
# t quantile at S - 1 degrees of freedom, plus a quarter for variances estimated from few seeds and rows
WIDTH_ALLOWANCE = 1.25


def width_bound(seeds: int) -> float:
    return WIDTH_ALLOWANCE * scipy_stats.t.ppf(0.975, seeds - 1) / scipy_stats.norm.ppf(0.975)


def _spread() -> float:
    """E[q (1 - q)] of a row's difficulty q ~ Beta(a, b): ab / ((a + b)(a + b + 1))."""
    a = ACCURACY * CONCENTRATION
    return a * (CONCENTRATION - a) / (CONCENTRATION * (CONCENTRATION + 1))


def _shift_scale(ratio: float, paired: bool) -> float:
    """tau giving seed noise = `ratio` x the test-row noise of the mean (first order in tau)."""
    spread = _spread()
    if paired:  # rows differ where u falls between the two chances: about GAIN E[q(1-q)] of them
        return ratio * math.sqrt(GAIN * spread / ROWS) / (math.sqrt(2) * spread)
    return ratio * math.sqrt(ACCURACY * (1 - ACCURACY) / ROWS) / spread


def _draw(rng: np.random.Generator, seeds: int, tau: float, paired: bool) -> tuple[np.ndarray, float]:
    """(seeds x rows correctness, or paired differences; the truth in points) of one replicate."""
    a = ACCURACY * CONCENTRATION
    q = rng.beta(a, CONCENTRATION - a, size=ROWS)
    u = rng.random((seeds, ROWS))

    def right(chance: np.ndarray) -> np.ndarray:
        shift = np.clip(rng.normal(0.0, tau, size=(seeds, 1)), -1.0, 1.0)
        return u < chance + shift * chance * (1 - chance)

    if not paired:
        return right(q), 100.0 * ACCURACY
    base = right(q)
    return right(q + GAIN * q * (1 - q)).astype(np.int8) - base.astype(np.int8), 100.0 * GAIN * _spread()


def simulate(method: str, regime: str, seeds: int, paired: bool, replicates: int = REPLICATES) -> dict:
    """Coverage of the truth by `method`'s 95% interval, its mean width over the oracle's, and the seed noise
    over the test-row noise measured in the simulation."""
    rng = np.random.default_rng([SIMULATION_SEED, seeds, list(REGIMES).index(regime), int(paired)])
    tau = _shift_scale(REGIMES[regime], paired)
    hits, widths, means, seed_var, row_var = 0, [], [], [], []
    for _ in range(replicates):
        per_row, truth = _draw(rng, seeds, tau, paired)
        found = stats.estimate(per_row, [], 0, paired=paired, method=method)
        hits += found["low"] <= truth <= found["high"]
        widths.append(found["high"] - found["low"])
        by_seed = 100.0 * per_row.mean(1)
        means.append(by_seed.mean())
        seed_var.append(by_seed.var(ddof=1))
        row_var.append((100.0 * per_row).var(ddof=1) / ROWS)
    oracle = 2 * scipy_stats.norm.ppf(0.975) * np.std(means, ddof=1)
    return {"coverage": hits / replicates, "width_over_oracle": float(np.mean(widths) / oracle),
            "seed_over_row_noise": float(math.sqrt(np.mean(seed_var) / np.mean(row_var)))}


def run(method: str = stats.PRIMARY, replicates: int = REPLICATES) -> dict:
    """Every regime, seed count and kind (rows, paired claims) for one method."""
    cases = [{"kind": "paired" if paired else "row", "regime": regime, "seeds": seeds,
              **simulate(method, regime, seeds, paired, replicates)}
             for paired in (False, True) for regime in REGIMES for seeds in SEEDS]
    return {"method": method, "description": stats.METHODS[method].description, "replicates": replicates,
            "rows": ROWS, "nominal": stats.CONFIDENCE, "cases": cases,
            "min_coverage": min(c["coverage"] for c in cases),
            "max_width_over_bound": max(c["width_over_oracle"] / width_bound(c["seeds"]) for c in cases)}


def summary(found: dict) -> str:
    """One sentence for a report: the simulated coverage and width of the method."""
    by_seeds = {s: min(c["coverage"] for c in found["cases"] if c["seeds"] == s) for s in SEEDS}
    widths = {s: (min(c["width_over_oracle"] for c in found["cases"] if c["seeds"] == s),
                  max(c["width_over_oracle"] for c in found["cases"] if c["seeds"] == s)) for s in SEEDS}
    return (f"simulated coverage of its nominal {found['nominal']:.0%} interval, worst case over three regimes "
            "(test rows, seeds, or both dominating the noise) for rows and paired claims on "
            f"{found['rows']:,} test rows: " + ", ".join(f"{by_seeds[s]:.1%} at {s} seeds" for s in SEEDS)
            + "; its width against an oracle's that knows the true spread (the price of estimating a variance "
            "from few seeds): " + ", ".join(f"{widths[s][0]:.1f}-{widths[s][1]:.1f}x at {s}" for s in SEEDS)
            + f" ({found['replicates']:,} replicates each; `sharens/judge/coverage.py`)")


def stored() -> dict | None:
    """The committed simulation of the primary method, or None before `python -m sharens coverage` ran."""
    return json.loads(STORED.read_text()) if STORED.is_file() else None


def write() -> Path:
    """Run the simulation and store it in `sharens/coverage.json`."""
    write_json(STORED, run())
    return STORED
