"""Seeds -> mean +/- std, paired differences with confidence intervals, and verdicts."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

VERDICT_RULES = """\
- a row is `reproduced` when |our mean - paper| <= tolerance; `not reproduced`
  when the 95% t-interval of our mean lies wholly outside paper +/- tolerance;
  otherwise `inconclusive` (too few seeds or too much spread to tell).
- a row or claim measured on a split of other size than the paper's (a partial
  data set, or the smoke profile's slices) is `not comparable`.
- the claim "SE beats its baseline" is `reproduced` when the 95% t-interval of
  the paired difference (SE - baseline, same seeds) lies above 0; `not reproduced`
  when its upper end is at or below 0, or below the paper's own gain minus the
  tolerance (the gain the paper reports is ruled out); `inconclusive` otherwise.
"""  # stated in every report

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
NOT_COMPARABLE = "not comparable"
CONFIDENCE = 0.95


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
    """95% confidence interval of the mean (Student t); None below 2 values."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return None
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


def row_verdict(values: Sequence[float], paper: float | None, tolerance: float) -> str | None:
    if paper is None or not len(values):
        return None
    mean = float(np.mean(values))
    if abs(mean - paper) <= tolerance:
        return REPRODUCED
    interval = t_interval(values)
    if interval and (interval[0] > paper + tolerance or interval[1] < paper - tolerance):
        return NOT_REPRODUCED
    return INCONCLUSIVE


def paired_difference(treatment: dict[int, float], control: dict[int, float]) -> dict:
    """SE minus baseline over the seeds both have: {mean, ci95, n, values}."""
    seeds = sorted(set(treatment) & set(control))
    diffs = [treatment[s] - control[s] for s in seeds]
    out = summarize(diffs)
    out["ci95"] = t_interval(diffs)
    return out


def claim_verdict(difference: dict, paper_gain: float | None, tolerance: float) -> str:
    """Does SE beat its baseline, as the paper claims? See the module docstring."""
    interval = difference.get("ci95")
    if interval is None:
        return INCONCLUSIVE
    low, high = interval
    if low > 0:
        return REPRODUCED
    if high <= 0 or (paper_gain is not None and high < paper_gain - tolerance):
        return NOT_REPRODUCED
    return INCONCLUSIVE
