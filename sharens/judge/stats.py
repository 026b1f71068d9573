"""Intervals and verdicts: a row's accuracy against the paper's, and SE's gain over its baseline.

An accuracy varies with the seed and with the test rows that happen to be in the test set; the seeds of a
row share one test set. The interval (`two_way`) reads a row's seeds x test rows table of per-row correctness
(or a claim's per-row differences) as a two-way random-effects layout and splits the variance of its mean in
two: the seed means' variance / S, which holds each seed's own luck on the rows, known to S - 1 degrees of
freedom; and the test set's part shared by every seed, the row means' variance / n less the row-seed
interaction it also holds, known to n - 1. Each part is scaled by its own Student t quantile and the two
half-widths add in quadrature. So few seeds widen the interval as a t interval must (a bootstrap over the seeds
it has cannot reach beyond them; Welch-Satterthwaite's data-chosen degrees of freedom grow exactly when the
seed variance is underestimated, and under-cover at 2-3 seeds), while seeds that agree leave the test rows'
sampling error alone (a deterministic model's rows get the binomial interval). It is analytic: the same cells
give the same verdicts. Its coverage is simulated (`sharens.judge.coverage`) and stated in every report. A claim's
p-value is the level at which its interval's edge reaches zero (two-sided). Cells of older runs kept no per-row
outcomes: the test-row part is then binomial, p(1 - p) / n (rows), or absent (paired gains).

Two alternatives stay for the sensitivity line of every report (`ALTERNATIVES`): the percentile bootstrap
over seeds and test rows the suite used before, and a t interval over the seeds' accuracies alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
NOT_COMPARABLE = "not comparable"
CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0  # the alternative's resampling is seeded; no verdict of a report rests on it
_CHUNK_CELLS = 4_000_000  # bootstrap draws are done in chunks of about this many (seed, row) values

# the families whose p-values are Holm-corrected together, by whose claim it is (`sharens.judge.claims.Claim.paper`)
FAMILIES = {True: "the paper's claims", False: "the suite's control claims"}

VERDICT_RULES = f"""\
- every interval is a {CONFIDENCE:.0%} interval over seeds and test rows: the seed means' variance / S
  with Student's t at S - 1 degrees of freedom and the test set's shared variance with t at n - 1, added
  in quadrature (analytic, no resampling; its simulated coverage is stated with it). Cells that kept no
  per-row outcomes use the binomial test-row variance (rows) or the seeds alone (paired gains).
- a row is `reproduced` when the interval of our accuracy lies inside paper +/- tolerance;
  `not reproduced (above)` or `(below)` when it lies wholly outside that band; otherwise
  `inconclusive`. With one seed the seed variance is unknown: `inconclusive`. Row verdicts
  are not corrected for multiplicity: each reads its own row's 95% interval.
- a row or claim measured on a split of other size than the paper's (a partial data set,
  or a profile's slices) is `not comparable`; one that rests on an unhealthy cell gets the
  cell's health status (`diverged`, `collapsed`, `under-trained`) instead of a verdict.
- a claim compares SE with another row on the same seeds and test rows (paired gain). Direction:
  the two-sided p-value of "no difference", Holm-corrected within its family; `reproduced` (ours:
  `holds`) when the corrected p < {ALPHA:g} and the gain is positive, `not reproduced` (ours:
  `reversed`) when the corrected p < {ALPHA:g} and the gain is negative, else `inconclusive`: one
  rule both ways. Families, per table: {FAMILIES[True]} (SE beats its baseline, every data set,
  pair and preset: what the table is judged on) and {FAMILIES[False]} (SE beats DSN, SE beats a
  snapshot ensemble: questions of ours, which must neither dilute nor borrow the paper's power).
  Magnitude: the paper's gain is `consistent` when it lies inside our interval widened by the
  tolerance, else ours is `smaller` or `larger` than the paper's. A claim on one seed is
  `inconclusive`, with no magnitude and outside the Holm family.
- sensitivity: every verdict is recomputed under the alternative methods (the bootstrap over seeds
  and rows, {BOOTSTRAP_SAMPLES} resamples; a t interval over seeds alone); the report lists those
  that would change.
"""  # stated in every report


def summarize(values: Sequence[float]) -> dict:
    """{mean, std, n, values}; std is the sample std (ddof=1), None for one value."""
    v = np.asarray(values, dtype=float)
    return {
        "mean": float(v.mean()) if len(v) else None,
        "std": float(v.std(ddof=1)) if len(v) > 1 else None,
        "n": len(v),
        "values": [float(x) for x in v],
    }


def t_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """95% confidence interval of the mean over seeds alone (Student t); None below 2 values."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return None
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


@dataclass(frozen=True)
class Method:
    """A way to put a 95% interval and a two-sided p-value of "zero" on a mean over seeds and test rows."""

    name: str
    description: str
    estimate: Callable[[np.ndarray | None, Sequence[float], int, bool], dict | None]


def _t_estimate(mean: float, variance: float, df: float) -> tuple[float, float, float]:
    """(low, high, two-sided p of 0) of a t-distributed mean."""
    se = math.sqrt(max(variance, 0.0))
    if se == 0:
        return mean, mean, (1.0 if mean == 0 else 0.0)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * se
    return mean - half, mean + half, float(2 * stats.t.sf(abs(mean) / se, df))


def variance_of_mean(x: np.ndarray) -> tuple[float, float, float]:
    """(seed part, test-row part, row-seed interaction part) of the variance of the mean of `x` (seeds x test
    rows) in the two-way random-effects layout: the seed means' variance / S, the row means' variance / n, and
    the residual mean square / (S n), which each of the first two holds once."""
    seeds, rows = x.mean(1), x.mean(0)
    s, n = x.shape
    residual = x - seeds[:, None] - rows[None, :] + x.mean()
    interaction = float((residual ** 2).sum() / ((s - 1) * (n - 1))) / (s * n) if s > 1 else 0.0
    return (float(seeds.var(ddof=1)) / s if s > 1 else 0.0), float(rows.var(ddof=1)) / n, interaction


def _quadrature(mean: float, parts: list[tuple[float, float]]) -> tuple[float, float, float]:
    """(low, high, two-sided p of 0) when each variance part (variance, df) is scaled by its own t quantile and
    the half-widths are added in quadrature; p is the level at which the interval's edge reaches 0."""
    def half(alpha: float) -> float:  # stdtrit(df, q) is stats.t.ppf(q, df) without its checks, 50x faster
        return math.sqrt(sum(special.stdtrit(df, 1 - alpha / 2) ** 2 * v for v, df in parts if v > 0))

    width = half(ALPHA)
    if width == 0:
        return mean, mean, (1.0 if mean == 0 else 0.0)
    tiny = 1e-15
    if mean == 0 or half(tiny) <= abs(mean):
        p_value = 1.0 if mean == 0 else 0.0
    else:
        p_value = float(optimize.brentq(lambda alpha: half(alpha) - abs(mean), tiny, 1.0, xtol=1e-12))
    return mean - width, mean + width, p_value


def _two_way(per_row: np.ndarray | None, values: Sequence[float], n_test: int, paired: bool) -> dict | None:
    """Seed part with t at S - 1 df, the test set's shared part with t at n - 1 df (module docstring)."""
    if per_row is not None:
        x = 100.0 * np.asarray(per_row, dtype=np.float64)  # seeds x test rows, in points
        seed_part, row_part, interaction = variance_of_mean(x)
        mean, s, rows = float(x.mean()), len(x), x.shape[1]
        shared = max(row_part - interaction, 0.0) if s > 1 else row_part
    else:
        v = np.asarray(values, dtype=np.float64)
        s, rows, mean = len(v), n_test, float(v.mean()) if len(v) else 0.0
        if s < 2:
            return None  # one seed and no rows: nothing to go on
        p = mean / 100
        seed_part = float(v.var(ddof=1)) / s
        shared = 0.0 if paired or not n_test else 1e4 * p * (1 - p) / n_test  # binomial: at least the shared part
    parts = [(shared, rows - 1)] + ([(seed_part, s - 1)] if s >= 2 else [])
    low, high, p_value = _quadrature(mean, parts)
    # one seed: the test rows alone, and no p (no verdict rests on it)
    return {"low": low, "high": high, "p_value": p_value if s >= 2 else None, "df": s - 1 if s >= 2 else None}


def _seeds_t(per_row: np.ndarray | None, values: Sequence[float], n_test: int, paired: bool) -> dict | None:
    """A t interval over the seeds' accuracies (or gains) alone: blind to the test rows' sampling."""
    v = np.asarray(100.0 * np.asarray(per_row, dtype=np.float64).mean(1) if per_row is not None else values,
                   dtype=np.float64)
    if len(v) < 2:
        return None
    low, high, p_value = _t_estimate(float(v.mean()), v.var(ddof=1) / len(v), len(v) - 1)
    return {"low": low, "high": high, "p_value": p_value, "df": len(v) - 1}


def bootstrap_means(per_row: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Means of `per_row` (seeds x test rows) over resampled seeds and resampled rows, in points (x 100)."""
    per_row = np.asarray(per_row, dtype=np.float32)
    n_seeds, n_rows = per_row.shape
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // (n_seeds * n_rows))
    means = []
    for start in range(0, samples, chunk):
        size = min(chunk, samples - start)
        rows = rng.integers(0, n_rows, size=(size, n_rows))
        by_seed = per_row[:, rows].mean(-1)  # (seeds, size): each seed on the same resampled rows
        seeds = rng.integers(0, n_seeds, size=(size, n_seeds))
        means.append(by_seed[seeds, np.arange(size)[:, None]].mean(-1))
    return 100.0 * np.concatenate(means)


def _bootstrap(per_row: np.ndarray | None, values: Sequence[float], n_test: int, paired: bool) -> dict | None:
    """Percentile bootstrap over seeds and test rows (the seeds it has taken as the population of seeds)."""
    if per_row is None:
        return None
    means = bootstrap_means(per_row)
    low, high = np.percentile(means, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    tail = min(np.sum(means <= 0), np.sum(means >= 0))
    return {"low": float(low), "high": float(high), "df": None,
            "p_value": float(min(1.0, 2 * (1 + tail) / (len(means) + 1))) if len(per_row) >= 2 else None}


METHODS = {m.name: m for m in (
    Method("two_way", "seeds and test rows: the seed means' variance / S with t at S - 1 df, the test set's shared "
                      "variance with t at n - 1 df, in quadrature", _two_way),
    Method("bootstrap", f"percentile bootstrap over seeds and test rows ({BOOTSTRAP_SAMPLES} resamples)", _bootstrap),
    Method("seeds_t", "t over the seeds' accuracies alone (test rows' sampling ignored)", _seeds_t),
)}
PRIMARY = "two_way"
ALTERNATIVES = ("bootstrap", "seeds_t")


def estimate(per_row: np.ndarray | None, values: Sequence[float], n_test: int, paired: bool = False,
             method: str = PRIMARY) -> dict | None:
    """{low, high, p_value, df, method} of a mean over seeds: from `per_row` (seeds x test rows; correctness,
    or paired differences) where the cells kept it, else from the seeds' `values` (points) and `n_test`."""
    found = METHODS[method].estimate(per_row, values, n_test, paired)
    if found is None:
        return None
    described = METHODS[method].description
    if per_row is None and method == PRIMARY:
        described += (" from the seeds' accuracies and the binomial test-row variance (no per-row outcomes)"
                      if not paired else " from the seeds alone (no per-row outcomes)")
    return {**found, "method": described}


def accuracy_interval(correct: np.ndarray | None, values: Sequence[float], n_test: int,
                      method: str = PRIMARY) -> dict | None:
    """{low, high, method, df} of a row's mean accuracy (no p-value: a row is judged by its interval)."""
    found = estimate(correct, values, n_test, method=method)
    return None if found is None else {k: v for k, v in found.items() if k != "p_value"}


def row_verdict(interval: dict | None, n_seeds: int, paper: float | None, tolerance: float) -> str | None:
    if paper is None or not n_seeds:
        return None
    if n_seeds < 2 or interval is None:
        return INCONCLUSIVE
    if paper - tolerance <= interval["low"] and interval["high"] <= paper + tolerance:
        return REPRODUCED
    if interval["low"] > paper + tolerance:
        return f"{NOT_REPRODUCED} (above)"
    if interval["high"] < paper - tolerance:
        return f"{NOT_REPRODUCED} (below)"
    return INCONCLUSIVE


def paired_difference(treatment: dict[int, float], control: dict[int, float]) -> dict:
    """Treatment minus control over the seeds both have: {mean, ci95, n, values} (t-interval over seeds)."""
    seeds = sorted(set(treatment) & set(control))
    diffs = [treatment[s] - control[s] for s in seeds]
    out = summarize(diffs)
    out["ci95"] = t_interval(diffs)
    return out


def paired_gain(treatment: dict[int, np.ndarray], control: dict[int, np.ndarray],
                accuracies: tuple[dict[int, float], dict[int, float]], method: str = PRIMARY) -> dict:
    """SE minus another row on the seeds both have: {mean, ci95, n, values, p_value, method, df}.

    With per-row correctness for both ({seed: bool array}) the interval is over seeds and test rows of the
    per-row differences; else over the seeds' accuracy differences alone.
    """
    out = paired_difference(*accuracies)
    seeds = sorted(set(treatment) & set(control))
    diff = (np.stack([treatment[s].astype(np.int8) - control[s].astype(np.int8) for s in seeds])
            if seeds and len(seeds) == out["n"] else None)
    found = estimate(diff, out["values"], 0, paired=True, method=method)
    if found is None:
        return {**out, "ci95": None, "p_value": None, "method": METHODS[method].description, "df": None}
    return {**out, "ci95": (found["low"], found["high"]), "p_value": found["p_value"], "method": found["method"],
            "df": found["df"]}


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None stays None), controlling the family-wise error rate."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (len(indexed) - rank) * p))
        adjusted[i] = running
    return adjusted


def direction_verdict(gain: dict, adjusted_p: float | None) -> str:
    """One rule both ways: a Holm-corrected two-sided p below alpha decides, the gain's sign says which way."""
    if gain["n"] < 2 or adjusted_p is None or adjusted_p >= ALPHA:  # one seed: the seed variance is unknown
        return INCONCLUSIVE
    return REPRODUCED if gain["mean"] > 0 else NOT_REPRODUCED


def magnitude_verdict(gain: dict, paper_gain: float | None, tolerance: float) -> str | None:
    interval = gain.get("ci95")
    if paper_gain is None or interval is None or gain["n"] < 2:
        return None
    if interval[0] - tolerance <= paper_gain <= interval[1] + tolerance:
        return "consistent"
    return "ours smaller" if paper_gain > interval[1] + tolerance else "ours larger"
