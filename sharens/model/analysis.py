"""What a network cell measures beyond its vote: calibration, diversity and anytime prediction, per voter group.

A cell's voters (the heads of one network, or the members or snapshots of an ensemble) fall into groups: the
taps of an SE network, one group per member of an ensemble. Computed once, when the cell runs, from every
voter's logits on the test rows and, where the cell holds train rows out of training, on those rows. Whatever
is fitted here is fitted on the held-out rows, never on the test rows: a temperature for every vote, and the
confidence thresholds of early exit.

- calibration: every metric (`sharens.model.metrics`) of every head, every group's vote, every prefix vote (the
  groups up to one, soft-voted) and the cell's own vote, before and after temperature scaling (the vote's
  log-scores divided by T, then renormalised: pool, then calibrate), with the reliability bins of the
  cell's vote;
- diversity: pairwise disagreement (raw, and over the pair's mean error), mean pairwise KL, and the mutual
  information of the voters (entropy of the mean minus the mean entropy), over all voters, within a group
  and across groups;
- anytime: accuracy and calibration of each prefix vote against the forward FLOPs it needs; early exit: a
  row leaves at the first prefix whose vote is at least `threshold` confident, the threshold chosen on the
  held-out rows as the one most accurate there within a FLOPs budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from sharens.model.evaluation import measure
from sharens.model.metrics import ECE_BINS, METRICS, PROBABILITY_FLOOR
from sharens.model.voting import soft_vote

ANALYSIS_VERSION = 1
EXIT_BUDGETS = tuple(round(0.1 * k, 1) for k in range(1, 11))  # shares of the whole network's forward FLOPs
MAX_THRESHOLDS = 256  # candidate exit thresholds tried on the held-out rows (quantiles of their confidence)
MIN_FIT_ROWS = 50  # held-out rows below which nothing is fitted (GTZAN's 20 clips hold out one or two)
SIGNIFICANT = 5  # digits kept: the analysis is descriptive, and a cell holds many numbers

Vote = Callable[[torch.Tensor], torch.Tensor]  # logits (samples, voters, classes) -> scores (samples, classes)


def analyse(test_logits: torch.Tensor, y_test: torch.Tensor, held_logits: torch.Tensor | None,
            y_held: torch.Tensor | None, groups: list[str], prefix_flops: dict[str, float],
            vote: Vote, voter_names: list[str], vote_metrics: dict) -> dict:
    """The analysis of one cell. `groups[h]` names voter h's group (groups in depth order, as `prefix_flops`,
    which gives the forward FLOPs per sample a prediction from the groups up to each one needs); `vote` is the
    cell's own rule, and `vote_metrics` what the cell's record measured of it (`evaluation.measure`): the one
    computation of the own vote's metrics, which the analysis keeps instead of measuring it again."""
    held_rows = 0 if y_held is None else len(y_held)
    if held_rows < MIN_FIT_ROWS:
        held_logits, y_held = None, None  # too few rows to fit a temperature or a threshold on
    test_logits, held_logits = test_logits.double(), None if held_logits is None else held_logits.double()
    order = list(dict.fromkeys(groups))
    members = {g: [h for h, name in enumerate(groups) if name == g] for g in order}
    rules: dict[str, Vote] = {"vote": vote}
    if len(voter_names) > 1:
        rules |= {f"head {name}": _voters([h]) for h, name in enumerate(voter_names)}
    if len(order) > 1:
        rules |= {f"group {g}": _voters(members[g]) for g in order if len(members[g]) > 1}
        rules |= {f"prefix {g}": _voters(_prefix(members, order, g)) for g in order[:-1]}
    calibration = {name: _calibrate(rule, test_logits, y_test, held_logits, y_held) for name, rule in rules.items()}
    own = calibration["vote"]
    result = {
        "version": ANALYSIS_VERSION,
        "held_out_rows": held_rows,
        "calibration": {name: entry["summary"] for name, entry in calibration.items()},
        "reliability": {"before": own["bins_before"], "after": own["bins_after"]},
        "diversity": diversity(test_logits.softmax(-1), y_test, groups) if len(groups) > 1 else None,
    }
    if len(order) > 1:
        result["anytime"] = _anytime(test_logits, y_test, members, order, prefix_flops)
        if held_logits is not None:
            result["early_exit"] = _early_exit(test_logits, y_test, held_logits, y_held, members, order,
                                               prefix_flops)
    result = _rounded(result)
    result["calibration"]["vote"]["before"] = dict(vote_metrics)  # as the record holds them: not rounded
    return result


def _voters(heads: list[int]) -> Vote:
    """The soft vote of some of the voters."""
    return lambda logits: soft_vote(logits[:, heads], torch.ones(len(heads), dtype=logits.dtype))


def _prefix(members: dict[str, list[int]], order: list[str], last: str) -> list[int]:
    return [h for g in order[: order.index(last) + 1] for h in members[g]]


def fit_temperature(scores: torch.Tensor, targets: torch.Tensor, iterations: int = 80) -> float:
    """The temperature T minimising the NLL of softmax(log(scores) / T) on these rows (golden-section search
    over log T in [-5, 5]; the NLL is convex in 1/T, so it has one minimum)."""
    log_scores = scores.double().clamp_min(PROBABILITY_FLOOR).log()
    y = targets.long()[:, None]

    def nll(log_t: float) -> float:
        return -(log_scores / math.exp(log_t)).log_softmax(-1).gather(1, y).mean().item()

    a, b = -5.0, 5.0
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(iterations):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return math.exp((a + b) / 2)


def temper(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    return (scores.double().clamp_min(PROBABILITY_FLOOR).log() / temperature).softmax(-1)


def reliability_bins(scores: torch.Tensor, targets: torch.Tensor) -> dict[str, list[float]]:
    """Per equal-width bin of the top score: rows, summed top score, rows right (summable over seeds)."""
    confidence, predicted = scores.double().nan_to_num(0.0).max(1)
    bins = (confidence * ECE_BINS).long().clamp_max(ECE_BINS - 1)

    def per_bin(values: torch.Tensor) -> list[float]:
        return torch.zeros(ECE_BINS, dtype=torch.float64).index_add_(0, bins, values.double()).tolist()

    return {"rows": per_bin(torch.ones_like(confidence)), "confidence": per_bin(confidence),
            "correct": per_bin((predicted == targets).double())}


def _calibrate(rule: Vote, test_logits: torch.Tensor, y_test: torch.Tensor, held_logits: torch.Tensor | None,
               y_held: torch.Tensor | None) -> dict:
    scores = rule(test_logits)
    summary = {"temperature": None, "before": measure(scores, y_test), "after": None}
    bins_after = None
    if held_logits is not None:
        temperature = fit_temperature(rule(held_logits), y_held)
        tempered = temper(scores, temperature)
        summary |= {"temperature": temperature, "after": measure(tempered, y_test)}
        bins_after = reliability_bins(tempered, y_test)
    return {"summary": summary, "bins_before": reliability_bins(scores, y_test), "bins_after": bins_after}


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(PROBABILITY_FLOOR).log()).sum(-1)


def disagreement(predicted: torch.Tensor, groups: list[str]) -> dict[str, float | None]:
    """Share of rows (%) on which two voters predict different classes (`predicted`: rows x voters), over all
    pairs of voters, pairs within a group and pairs across groups."""
    i, j = np.triu_indices(predicted.shape[1], k=1)
    return _by_pairing(100.0 * _disagreement_rates(predicted, i, j), _same_group(groups, i, j))


def diversity(probabilities: torch.Tensor, targets: torch.Tensor, groups: list[str]) -> dict:
    """Pairwise disagreement (as `disagreement`), the same over the pair's mean error rate, and the mean
    symmetric KL (nats), over all pairs of voters, pairs within a group and pairs across groups; the voters'
    mutual information (nats), over all voters and within a group (mean over groups of more than one voter)."""
    predicted = probabilities.argmax(-1)
    error = (predicted != targets[:, None]).double().mean(0)
    log_p = probabilities.clamp_min(PROBABILITY_FLOOR).log()
    i, j = np.triu_indices(probabilities.shape[1], k=1)
    disagree = _disagreement_rates(predicted, i, j)
    mean_error = (error[i] + error[j]) / 2
    kl = torch.stack([0.5 * ((probabilities[:, a] - probabilities[:, b]) * (log_p[:, a] - log_p[:, b])).sum(-1).mean()
                      for a, b in zip(i, j, strict=True)])
    same = _same_group(groups, i, j)
    names = np.array(groups)
    within = [_mutual_information(probabilities[:, names == g]) for g in dict.fromkeys(groups)
              if (names == g).sum() > 1]
    return {"disagreement": _by_pairing(100.0 * disagree, same),
            # pairs of two voters without an error have no ratio
            "disagreement_over_error": _by_pairing(disagree / mean_error.clamp_min(1e-12), same,
                                                   valid=mean_error > 0),
            "kl": _by_pairing(kl, same),
            "mutual_information": {"all": _mutual_information(probabilities),
                                   "within_group": float(np.mean(within)) if within else None}}


def _disagreement_rates(predicted: torch.Tensor, i: np.ndarray, j: np.ndarray) -> torch.Tensor:
    """For each pair (i[k], j[k]) of voters, the share of rows on which they predict different classes."""
    return (predicted[:, i] != predicted[:, j]).double().mean(0)


def _same_group(groups: list[str], i: np.ndarray, j: np.ndarray) -> torch.Tensor:
    names = np.array(groups)
    return torch.from_numpy(names[i] == names[j])


def _by_pairing(values: torch.Tensor, same: torch.Tensor, valid: torch.Tensor | None = None) -> dict[str, float | None]:
    """Mean of a per-pair value over all pairs, pairs within a group and pairs across (None where no pair)."""
    valid = torch.ones_like(same) if valid is None else valid

    def mean(mask: torch.Tensor) -> float | None:
        mask = mask & valid
        return values[mask].mean().item() if mask.any() else None
    return {"all": mean(torch.ones_like(same)), "within_group": mean(same), "across_groups": mean(~same)}


def _mutual_information(probabilities: torch.Tensor) -> float:
    """Entropy of the voters' mean minus their mean entropy, averaged over rows (nats)."""
    return (_entropy(probabilities.mean(1)) - _entropy(probabilities).mean(1)).mean().item()


def _prefix_scores(logits: torch.Tensor, members: dict[str, list[int]], order: list[str]) -> list[torch.Tensor]:
    return [_voters(_prefix(members, order, g))(logits) for g in order]


def _anytime(logits: torch.Tensor, targets: torch.Tensor, members: dict[str, list[int]], order: list[str],
             prefix_flops: dict[str, float]) -> list[dict]:
    full = prefix_flops[order[-1]]
    return [{"group": g, "flops": prefix_flops[g], "flops_share": prefix_flops[g] / full,
             **{name: METRICS[name].compute(scores, targets) for name in ("accuracy", "ece", "nll")}}
            for g, scores in zip(order, _prefix_scores(logits, members, order), strict=True)]


def _exits(scores: list[torch.Tensor], threshold: float) -> torch.Tensor:
    """Each row's exit: the first prefix whose top score reaches `threshold`, else the last."""
    confident = torch.stack([s.max(-1).values >= threshold for s in scores], dim=1)
    confident[:, -1] = True
    return confident.double().argmax(1)


def _exit_outcome(scores: list[torch.Tensor], targets: torch.Tensor, threshold: float,
                  cost: torch.Tensor) -> tuple[float, float]:
    """(accuracy %, mean forward FLOPs as a share of the whole network's) of exiting at `threshold`."""
    exits = _exits(scores, threshold)
    predicted = torch.stack([s.argmax(-1) for s in scores], dim=1).gather(1, exits[:, None])[:, 0]
    return 100.0 * (predicted == targets).double().mean().item(), cost[exits].mean().item()


def _early_exit(test_logits: torch.Tensor, y_test: torch.Tensor, held_logits: torch.Tensor, y_held: torch.Tensor,
                members: dict[str, list[int]], order: list[str], prefix_flops: dict[str, float]) -> list[dict]:
    held, test = _prefix_scores(held_logits, members, order), _prefix_scores(test_logits, members, order)
    cost = torch.tensor([prefix_flops[g] / prefix_flops[order[-1]] for g in order], dtype=torch.float64)
    confidence = torch.cat([s.max(-1).values for s in held[:-1]])
    candidates = torch.quantile(confidence, torch.linspace(0, 1, MAX_THRESHOLDS, dtype=torch.float64)).unique()
    candidates = [*candidates.tolist(), math.inf]  # inf: every row runs the whole network
    on_held = [(threshold, *_exit_outcome(held, y_held, threshold, cost)) for threshold in candidates]
    curve = []
    for budget in EXIT_BUDGETS:
        affordable = [c for c in on_held if c[2] <= budget + 1e-9]
        if not affordable:
            continue  # even the first prefix costs more than this share
        threshold = max(affordable, key=lambda c: (c[1], -c[2]))[0]
        accuracy, share = _exit_outcome(test, y_test, threshold, cost)
        curve.append({"budget": budget, "threshold": None if math.isinf(threshold) else threshold,
                      "accuracy": accuracy, "flops_share": share})
    return curve


def _rounded(value):
    """Floats to `SIGNIFICANT` digits; non-finite ones to None (JSON has no NaN)."""
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT}g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def summarize(analyses: list[dict]) -> dict | None:
    """A row's analysis over its seeds: the mean of every number (per voter group, per prefix, per budget),
    the seeds' standard deviation of the curves' accuracy and of the own vote's calibration, and the
    reliability bins summed (a diagram over all seeds' test rows)."""
    analyses = [_without_small_fits(a) for a in analyses]
    if not analyses:
        return None
    names = [name for name in analyses[0]["calibration"] if all(name in a["calibration"] for a in analyses)]
    own = [a["calibration"]["vote"] for a in analyses]
    summary = {
        "cells": len(analyses),
        "held_out_rows": _mean_tree([a["held_out_rows"] for a in analyses]),
        "calibration": {name: _mean_tree([a["calibration"][name] for a in analyses]) for name in names},
        "vote_spread": {when: {metric: _std([c[when][metric] for c in own if c[when]]) for metric in METRICS}
                        for when in ("before", "after") if all(c[when] for c in own)},
        "reliability": {when: _sum_bins([a["reliability"][when] for a in analyses]) for when in ("before", "after")},
        "diversity": _mean_tree([a["diversity"] for a in analyses]),
    }
    for curve, key in (("anytime", "group"), ("early_exit", "budget")):
        points = [{point[key]: point for point in a.get(curve) or []} for a in analyses]
        common = [k for k in points[0] if all(k in p for p in points)]
        if common:
            summary[curve] = [{**_mean_tree([p[k] for p in points]),
                               "accuracy_std": _std([p[k]["accuracy"] for p in points])} for k in common]
    within_half = [p for p in summary.get("anytime", []) if p["flops_share"] <= 0.5 + 1e-9]
    summary["at_half_flops"] = {  # the anytime curve at half the FLOPs: the deepest prefix that fits
        "anytime": within_half[-1]["accuracy"] if within_half else None,
        "early_exit": next((p["accuracy"] for p in summary.get("early_exit", []) if p["budget"] == 0.5), None)}
    return _rounded(summary)


def _without_small_fits(analysis: dict) -> dict:
    """A cell analysed before `MIN_FIT_ROWS` existed, with the fits it made on fewer rows taken out."""
    if analysis["held_out_rows"] >= MIN_FIT_ROWS:
        return analysis
    calibration = {name: {**entry, "temperature": None, "after": None}
                   for name, entry in analysis["calibration"].items()}
    return {**analysis, "calibration": calibration,
            "reliability": {**analysis["reliability"], "after": None}, "early_exit": None}


def _mean_tree(trees: list):
    """The mean of same-shaped trees of numbers, leaf by leaf (None where any seed has None, leaf or branch);
    other leaves as the first tree's."""
    first = trees[0]
    if isinstance(first, (dict, list)) and any(t is None for t in trees):
        return None
    if isinstance(first, dict):
        return {k: _mean_tree([t[k] if t is not None else None for t in trees]) for k in first}
    if isinstance(first, list):
        return [_mean_tree(list(items)) for items in zip(*trees, strict=True)]
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        if any(t is None for t in trees):
            return None
        return float(np.mean(trees))
    return first


def _std(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def _sum_bins(bins: list[dict | None]) -> dict | None:
    if any(b is None for b in bins):
        return None
    return {k: np.sum([b[k] for b in bins], axis=0).tolist() for k in bins[0]}
