"""A cell's test predictions -> what its record keeps: every vote's metrics, and every test row's outcome.

Every registered vote (`sharens.model.voting`) is scored by every registered metric
(`sharens.model.metrics`). Beside the numbers, a cell keeps its per-row outcomes, so
later statistics (test-row resampling, paired tests, calibration, diversity)
need no retraining: the true label, the cell's predicted class, every head's
(or member's) predicted class, and the cell's class probabilities in float16.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

from sharens.model.metrics import METRICS
from sharens.model.voting import VOTES, Ballot, head_accuracies

# bump when what a cell records changes (its predictions, curves, health): stored cells of another schema
# are recomputed
EVALUATION_SCHEMA = 3


def measure(scores: torch.Tensor, targets: torch.Tensor) -> dict[str, float | None]:
    """{metric: value} of one set of class scores; None where a metric is not finite (NaN scores, say)."""
    values = {name: metric.compute(scores, targets) for name, metric in METRICS.items()}
    return {name: value if math.isfinite(value) else None for name, value in values.items()}


def evaluate_network(logits: torch.Tensor, targets: torch.Tensor, vote: str,
                     heldout_accuracy: torch.Tensor | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """(record fields, outcomes) of a network cell whose voters gave `logits` (samples, heads, classes).

    `vote` names the rule that gives the cell's own `accuracy` and `metrics`; every other rule that
    applies is recorded beside it under `votes`.
    """
    ballot = Ballot(targets, heldout_accuracy)
    scores = {name: rule.scores(logits, ballot) for name, rule in VOTES.items()}
    scores = {name: s for name, s in scores.items() if s is not None}
    if vote not in scores:
        raise ValueError(f"vote {vote!r} does not apply to this cell (held-out accuracies: "
                         f"{'yes' if heldout_accuracy is not None else 'no'}); it applies: {', '.join(scores)}")
    votes = {name: measure(s, targets) for name, s in scores.items()}
    record = {"vote": vote, "votes": votes, "metrics": votes[vote], "accuracy": votes[vote]["accuracy"],
              "head_accuracies": [100.0 * a for a in head_accuracies(logits, targets).tolist()]}
    classes = logits.shape[-1]
    outcomes = {"y": _labels(targets, classes), "predicted": _labels(scores[vote].argmax(-1), classes),
                "heads": _labels(logits.argmax(-1), classes),
                "probabilities": scores[vote].cpu().numpy().astype(np.float16)}
    return record, outcomes


def evaluate_predictions(predictions: np.ndarray, targets: np.ndarray,
                         classes: int) -> tuple[dict, dict[str, np.ndarray]]:
    """(record fields, outcomes) of a model that gives classes only (the scikit-learn rows)."""
    predicted, y = torch.as_tensor(predictions), torch.as_tensor(targets)
    metrics = measure(torch.nn.functional.one_hot(predicted, classes).float(), y)
    return ({"metrics": metrics, "accuracy": metrics["accuracy"]},
            {"y": _labels(y, classes), "predicted": _labels(predicted, classes)})


def _labels(values: torch.Tensor, classes: int) -> np.ndarray:
    """Class indices in the smallest integer type that holds them."""
    return torch.as_tensor(values).cpu().numpy().astype(np.min_scalar_type(classes - 1))


def describe_outcomes(outcomes: dict[str, np.ndarray]) -> dict:
    """What the cell record says about its outcomes: their checksum, row count, and each array's type."""
    return {"sha256": outcomes_sha256(outcomes), "rows": int(len(outcomes["y"])),
            "arrays": {name: [str(a.dtype), list(a.shape)] for name, a in sorted(outcomes.items())}}


def outcomes_sha256(outcomes: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name, array in sorted(outcomes.items()):
        h.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()
