"""Intervals and verdicts: a row's accuracy against the paper's, and SE's gain over its baseline.

An accuracy varies with the seed and with the test rows that happen to be in
the test set. With the cells' per-row outcomes both are resampled: a bootstrap
draws seeds (with replacement) and test rows (with replacement, the same rows
for every seed, as the seeds share one test set) and takes the mean accuracy;
its 2.5 and 97.5 percentiles are the 95% interval. Cells of older runs kept no
outcomes; their interval is the normal approximation with both variances
(seed variance / n + binomial p(1 - p) / test rows). Every report states which.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
NOT_COMPARABLE = "not comparable"
CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0  # the resampling is seeded: the same cells give the same verdicts
_CHUNK_CELLS = 4_000_000  # bootstrap draws are done in chunks of about this many (seed, row) values

BOOTSTRAP = "bootstrap over seeds and test rows"
NORMAL = "normal approximation (seed variance and binomial test-row variance; the cells kept no per-row outcomes)"

VERDICT_RULES = f"""\
- every interval is a {CONFIDENCE:.0%} interval that accounts for both the seed and the
  sampling of test rows: a {BOOTSTRAP} ({BOOTSTRAP_SAMPLES} resamples, percentile
  interval) where the cells kept per-row outcomes, else a {NORMAL}.
- a row is `reproduced` when the interval of our accuracy lies inside paper +/- tolerance;
  `not reproduced (above)` or `(below)` when it lies wholly outside that band; otherwise
  `inconclusive`. With one seed the seed variance is unknown: `inconclusive`.
- a row or claim measured on a split of other size than the paper's (a partial data set,
  or a profile's slices) is `not comparable`; one that rests on an unhealthy cell gets the
  cell's health status (`diverged`, `collapsed`, `under-trained`) instead of a verdict.
- the claim "SE beats its baseline" has two parts. Direction: SE - baseline on the same
  seeds and the same test rows (paired); one-sided p-value of gain <= 0 from the same
  resampling, Holm-corrected across the claims of the table; `reproduced` when the
  corrected p < {ALPHA:g}, `not reproduced` when the interval of the gain lies below 0,
  else `inconclusive`. Magnitude: the paper's gain is `consistent` when it lies inside our
  interval widened by the tolerance, else ours is `smaller` or `larger` than the paper's.
  A claim on one seed is `inconclusive`, with no magnitude and outside the Holm family.
- our own claims (SE beats DSN, SE beats a snapshot ensemble) are tested the same way,
  in the same Holm family; their direction reads `holds`, `reversed` or `inconclusive`.
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


def bootstrap_means(per_row: np.ndarray, samples: int = BOOTSTRAP_SAMPLES) -> np.ndarray:
    """Means of `per_row` (seeds x test rows) over resampled seeds and resampled rows, in points (x 100)."""
    per_row = np.asarray(per_row, dtype=np.float32)
    n_seeds, n_rows = per_row.shape
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    chunk = max(1, _CHUNK_CELLS // (n_seeds * n_rows))
    means = []
    for start in range(0, samples, chunk):
        size = min(chunk, samples - start)
        rows = rng.integers(0, n_rows, size=(size, n_rows))
        by_seed = per_row[:, rows].mean(-1)  # (seeds, size): each seed on the same resampled rows
        seeds = rng.integers(0, n_seeds, size=(size, n_seeds))
        means.append(by_seed[seeds, np.arange(size)[:, None]].mean(-1))
    return 100.0 * np.concatenate(means)


def accuracy_interval(correct: np.ndarray | None, values: Sequence[float], n_test: int) -> dict | None:
    """{low, high, method} of a row's mean accuracy: bootstrap over `correct` (seeds x rows, bool) if given,
    else the normal approximation from the seeds' accuracies (%) and the test-set size."""
    if correct is not None:
        means = bootstrap_means(correct)
        low, high = np.percentile(means, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
        return {"low": float(low), "high": float(high), "method": BOOTSTRAP}
    v = np.asarray(values, dtype=float)
    if len(v) < 2 or not n_test:
        return None
    p = v.mean() / 100
    se = 100 * math.sqrt((v.std(ddof=1) / 100) ** 2 / len(v) + p * (1 - p) / n_test)
    z = stats.norm.ppf(1 - ALPHA / 2)
    return {"low": float(v.mean() - z * se), "high": float(v.mean() + z * se), "method": NORMAL}


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
                accuracies: tuple[dict[int, float], dict[int, float]]) -> dict:
    """SE minus baseline on the seeds both have: {mean, ci95, n, values, p_value, method}.

    With per-row correctness for both ({seed: bool array}) the paired bootstrap resamples seeds and test rows
    together; else a t-interval and one-sided t-test over the seeds' accuracy differences.
    """
    out = paired_difference(*accuracies)
    seeds = sorted(set(treatment) & set(control))
    if seeds and len(seeds) == out["n"]:
        diff = np.stack([treatment[s].astype(np.float32) - control[s].astype(np.float32) for s in seeds])
        means = bootstrap_means(diff)
        low, high = np.percentile(means, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
        out.update(ci95=(float(low), float(high)), method=BOOTSTRAP,
                   # one seed: its interval covers the test rows only, and it tests nothing (see direction_verdict)
                   p_value=float((1 + np.sum(means <= 0)) / (len(means) + 1)) if len(seeds) >= 2 else None)
        return out
    out["method"] = "t over seeds (the cells kept no per-row outcomes)"
    if out["n"] >= 2 and out["std"]:
        t = out["mean"] / (out["std"] / math.sqrt(out["n"]))
        out["p_value"] = float(stats.t.sf(t, out["n"] - 1))
    elif out["n"] >= 2:  # no spread: the sign alone decides
        out["p_value"] = 0.0 if out["mean"] > 0 else 1.0
    else:
        out["p_value"] = None
    return out


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
    if gain["n"] < 2:  # as for a row: with one seed the seed variance of the gain is unknown
        return INCONCLUSIVE
    interval = gain.get("ci95")
    if adjusted_p is not None and adjusted_p < ALPHA:
        return REPRODUCED
    if interval is not None and interval[1] < 0:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def magnitude_verdict(gain: dict, paper_gain: float | None, tolerance: float) -> str | None:
    interval = gain.get("ci95")
    if paper_gain is None or interval is None or gain["n"] < 2:
        return None
    if interval[0] - tolerance <= paper_gain <= interval[1] + tolerance:
        return "consistent"
    return "ours smaller" if paper_gain > interval[1] + tolerance else "ours larger"
