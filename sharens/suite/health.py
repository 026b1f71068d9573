"""Is a trained cell fit to carry a verdict? Judged from its training data only, never from test rows.

The rules, stated in every report (`RULES`):
- `diverged`: the loss turned NaN/inf or exploded (the training loop stops it).
- `collapsed`: at the end of training (with a held-out stopping rule: at the
  epoch whose weights were kept) the vote's training accuracy is within
  `COLLAPSE_MARGIN` points of the majority-class rate, or the loss per unit of
  head weight is within `COLLAPSE_ENTROPY_GAP` of the class prior's entropy
  (what a network that learned nothing but the class frequencies scores).
- `under-trained`: fewer than `MIN_EPOCHS` epochs (too few to see convergence;
  with a held-out stopping rule, the kept epoch counts, unless after it the
  training loss went on falling by more than `STILL_FALLING` while the held-out
  loss rose: that net over-fit, which is the convergence the rule looks for;
  one whose training loss stalled too is under-trained by an early stop rather
  than by our epoch budget, and the label names that cause);
  with a held-out stopping rule, one that ran out of epochs while its held-out
  loss was still at its best (the best epoch is the last); with fixed epochs
  or the training-loss stopping rule, the training loss still falling by more than `STILL_FALLING` of its final
  value over the last `TAIL` of the epochs while training accuracy is below
  `FIT_ACCURACY` (a net that fits its training set is done, whatever its loss does).
  A snapshot ensemble is one run on a cyclic schedule, judged as one: every cycle's loss falls steeply at its
  end by design (the rate anneals to zero), so its curve cannot say whether more training would help. It is
  under-trained when its held-out loss is still at its best at the end of the last cycle; without a held-out
  curve, when its snapshots' end-of-cycle training losses still fall as the rule above says (one point per
  snapshot).
A scikit-learn fit whose solver has an iteration cap (its spec's `max_iter`) is `under-trained` when the cap
stopped it before its tolerance (scikit-learn's ConvergenceWarning); the others run to their tolerance or,
a forest, have no iterative solver.
Otherwise `ok`. A row or claim with an unhealthy cell gets that status instead of a verdict, and so does one
resting on a cell of an older run that recorded no training curve or, a capped scikit-learn fit, no word from
its solver (`health not recorded`): its convergence cannot be checked, so no verdict may rest on it.
"""

from __future__ import annotations

import math

import numpy as np

from sharens.suite.plan import CAPS_BEFORE_KEYED
from sharens.train.presets import FIT_ACCURACY

OK, DIVERGED, COLLAPSED, UNDER_TRAINED = "ok", "diverged", "collapsed", "under-trained"
NOT_RECORDED = "health not recorded"  # a cell of an older run, which kept no training curve or solver record
# why a cell is under-trained: our epoch budget ran out (the default), or a held-out rule kept an epoch too early
BUDGET, EARLY_STOP = "budget", "early stop"
COLLAPSE_MARGIN = 1.0  # points of training accuracy above the majority-class rate
COLLAPSE_ENTROPY_GAP = 0.02  # a loss this close to the prior's entropy carries no information beyond it
MIN_EPOCHS = 3
TAIL = 0.2
STILL_FALLING = 0.10

RULES = (
    f"cell health, from training data only: `diverged` (NaN or exploding loss); `collapsed` (final training "
    f"accuracy within {COLLAPSE_MARGIN:g} point of the majority-class rate, or final loss per head within "
    f"{COLLAPSE_ENTROPY_GAP:.0%} of the class prior's entropy); `under-trained` (fewer than {MIN_EPOCHS} epochs, "
    "counting to the kept epoch where a held-out rule chose it; with a held-out stopping rule, its epoch cap "
    "reached with the held-out loss still at its best; with fixed epochs or the training-loss rule, the training "
    "loss still falling by "
    f"more than {STILL_FALLING:.0%} over the last {TAIL:.0%} of the epochs while training accuracy is below "
    f"{FIT_ACCURACY:g}%; a snapshot ensemble's cyclic run, as one: its held-out loss still at its best at the end "
    "of the last cycle, or without a held-out curve its end-of-cycle training losses still falling so; a "
    "scikit-learn solver stopped by its iteration cap before its tolerance); a row or "
    "claim resting on such a cell gets that status, not a verdict (as does a cell of an older run without a "
    "training curve or, a capped scikit-learn fit, without its solver's record: `health not recorded`); "
    "under-training is labelled "
    "`(budget)` where our epochs ran out, `(early stop)` where a held-out rule kept epoch 1 or 2 and the training "
    f"loss fell no more than {STILL_FALLING:.0%} after it (one that fell further over-fit: converged); with a "
    "held-out rule, health is judged at the kept epoch"
)


def class_prior(y: np.ndarray, classes: int) -> tuple[float, float]:
    """(majority-class rate in %, entropy of the class frequencies in nats) of training labels."""
    p = np.bincount(np.asarray(y), minlength=classes) / len(y)
    return 100.0 * float(p.max()), float(-(p[p > 0] * np.log(p[p > 0])).sum())


def judge_cell(record: dict) -> dict:
    """{status, evidence} of a cell record, judged now by today's rules from what it recorded.

    An independent ensemble is as fit as its least healthy member; a scikit-learn fit is judged by its solver;
    an older record without curves carries what `legacy` could tell.
    """
    if "health" in record:  # an older record: judged once, by `legacy`
        return record["health"]
    if record.get("variant") == "classic":
        return judge_classic(record)
    if record.get("variant") == "snapshot":  # its cycles are one run: judge the joined curve
        return judge(record, cycle_ends=[len(c["epoch_loss"]) for c in record.get("member_curves") or []])
    judged = [judge({**record, **curves}) for curves in record.get("member_curves") or [{}]]
    return min(judged, key=lambda v: [DIVERGED, COLLAPSED, UNDER_TRAINED, NOT_RECORDED, OK].index(v["status"]))


def judge_classic(record: dict) -> dict:
    """{status, evidence} of a scikit-learn fit: under-trained when its solver's iteration cap stopped it."""
    classic = (record.get("spec") or {}).get("classic") or {}
    cap = classic.get("max_iter", CAPS_BEFORE_KEYED.get(classic.get("estimator")))  # older specs: the cap then
    if cap is None:
        return {"status": OK, "evidence": "a scikit-learn fit without an iteration cap (no training curve to judge)"}
    solver = record.get("solver")
    if solver is None:
        return {"status": NOT_RECORDED, "evidence": f"an older run of {classic['estimator']}, whose solver stops "
                f"at {cap} iterations, without a record of whether it converged; rerun the cell"}
    if not solver["converged"]:
        return {"status": UNDER_TRAINED, "evidence": f"the solver stopped at its cap of {solver['max_iter']} "
                "iterations before its tolerance (scikit-learn's ConvergenceWarning)"}
    return {"status": OK, "evidence": f"the solver converged in {solver['iterations']} of {solver['max_iter']} "
            "iterations"}


def judge(record: dict, cycle_ends: list[int] | None = None) -> dict:
    """{status, evidence} of one trained network's record; `cycle_ends`: the epochs per cycle of a run on a
    cyclic schedule (a snapshot ensemble), judged by its held-out loss or its end-of-cycle losses."""
    if record.get("status") == DIVERGED:
        return {"status": DIVERGED,
                "evidence": f"loss not finite or exploding at step {record.get('diverged_at_step')}"}
    losses, accuracies = record.get("epoch_loss"), record.get("epoch_train_accuracy")
    if not losses:
        return {"status": OK, "evidence": "no training curve recorded"}
    heldout_rule = bool(record.get("patience")) and record.get("stop_on", "heldout_loss") == "heldout_loss"
    kept = record.get("best_epoch") if heldout_rule else None  # the epoch whose weights were kept
    if kept:
        losses, accuracies = losses[:kept], accuracies[:kept]
    final_loss, final_accuracy = losses[-1], accuracies[-1]
    majority, entropy = record["majority_rate"], record["prior_entropy"]
    if final_accuracy <= majority + COLLAPSE_MARGIN or abs(final_loss - entropy) <= COLLAPSE_ENTROPY_GAP * entropy:
        return {"status": COLLAPSED, "evidence": f"final training accuracy {final_accuracy:.1f}% (majority class "
                f"{majority:.1f}%), loss per head {final_loss:.3f} (prior entropy {entropy:.3f})"}
    trained = len(record["epoch_loss"])
    fit_on = _fall_after(record["epoch_loss"], kept) if kept else 0.0
    if len(losses) < MIN_EPOCHS:
        if not kept or kept == trained:
            return {"status": UNDER_TRAINED, "evidence": f"{len(losses)} epoch(s): too few to see convergence"}
        if fit_on <= STILL_FALLING:  # not our epoch budget: the run stalled on its training rows too
            return {"status": UNDER_TRAINED, "cause": EARLY_STOP,
                    "evidence": f"the held-out rule kept epoch {kept} of {trained}, and the training loss fell only "
                                f"{fit_on:.0%} after it: too few epochs to see convergence"}
    if heldout_rule:  # a held-out stopping rule chose the epochs: judge it, not the training loss
        if record.get("stopped") == "epochs" and kept == len(record["epoch_loss"]):
            return {"status": UNDER_TRAINED, "evidence": f"held-out loss still improving at the epoch cap "
                    f"({len(losses)} epochs)"}
    elif cycle_ends and record.get("heldout_loss"):
        held = record["heldout_loss"]
        if int(np.argmin(held)) == len(held) - 1:
            return {"status": UNDER_TRAINED, "evidence": f"held-out loss still at its best ({held[-1]:.3f}) at the "
                    f"end of the last of {len(cycle_ends)} cycles"}
    else:
        ends = np.cumsum(cycle_ends) - 1 if cycle_ends else np.arange(len(losses))
        points, unit = [losses[e] for e in ends], "cycles' ends" if cycle_ends else "epochs"
        tail = max(1, math.ceil(TAIL * len(points)))
        falling = (points[-1 - tail] - final_loss) / max(final_loss, 1e-12) if len(points) > tail else 0.0
        if falling > STILL_FALLING and final_accuracy < FIT_ACCURACY:
            return {"status": UNDER_TRAINED, "evidence": f"training loss fell {falling:.0%} over the last {tail} "
                    f"of {len(points)} {unit} (to {final_loss:.3f}); training accuracy {final_accuracy:.1f}%"}
    if kept and kept < MIN_EPOCHS:
        return {"status": OK, "evidence": f"the held-out rule kept epoch {kept} of {trained}: the training loss fell "
                f"{fit_on:.0%} more after it while the held-out loss rose (over-fitting: converged)"}
    return {"status": OK, "evidence": f"final training loss {final_loss:.3f}, accuracy {final_accuracy:.1f}% "
            f"after {len(losses)} epochs" + (f" (stopped: {record['stopped']})" if record.get("stopped") else "")}


def _fall_after(losses: list[float], kept: int) -> float:
    """How far the training loss fell after the kept epoch, as a share of its value there."""
    return (losses[kept - 1] - min(losses[kept:])) / max(losses[kept - 1], 1e-12) if kept < len(losses) else 0.0
