"""What a cell measures about a vote's class scores: every metric registered by name.

A metric takes class scores (samples, classes), rows summing to 1, and the
true labels, and returns one number. A new metric is one decorated function:
every cell records it for every vote, and every report shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from sharens.registry import registrar


@dataclass(frozen=True)
class Metric:
    name: str
    compute: Callable[[torch.Tensor, torch.Tensor], float]
    description: str


METRICS: dict[str, Metric] = {}
# decorator: @register_metric(name, description) makes `fn(scores, targets) -> float` the metric `name`
register_metric = registrar(METRICS, "metric", Metric)


@register_metric("accuracy", "test accuracy (%): the top-scoring class is the label")
def accuracy(scores: torch.Tensor, targets: torch.Tensor) -> float:
    return 100.0 * (scores.argmax(-1) == targets).float().mean().item()


PROBABILITY_FLOOR = 1e-7  # scores are clamped here before a log: a hard vote's zero (or float16's) is not -inf
ECE_BINS = 15


@register_metric("nll", "negative log-likelihood of the label (nats; scores clamped at 1e-7)")
def nll(scores: torch.Tensor, targets: torch.Tensor) -> float:
    p = scores.float().gather(1, targets.long()[:, None]).clamp_min(PROBABILITY_FLOOR)
    return -p.log().mean().item()


@register_metric("brier", "Brier score: squared distance of the class scores from the one-hot label, summed over "
                          "the classes and averaged over the rows (0 best, 2 worst)")
def brier(scores: torch.Tensor, targets: torch.Tensor) -> float:
    onehot = torch.nn.functional.one_hot(targets.long(), scores.shape[1]).float()
    return (scores.float() - onehot).pow(2).sum(1).mean().item()


@register_metric("ece", f"expected calibration error (%, {ECE_BINS} equal-width bins of the top score)")
def ece(scores: torch.Tensor, targets: torch.Tensor) -> float:
    confidence, predicted = scores.float().nan_to_num(0.0).max(1)  # a net that output NaN is confident of nothing
    correct = (predicted == targets).float()
    bins = (confidence * ECE_BINS).long().clamp_max(ECE_BINS - 1)
    gap = torch.zeros(ECE_BINS).index_add_(0, bins.cpu(), (confidence - correct).cpu())
    return 100.0 * (gap.abs().sum() / len(targets)).item()


@register_metric("ace", f"adaptive calibration error (%: rows sorted by top score, rows of equal score in row "
                        f"order, cut into {ECE_BINS} bins of equal row counts; the mean over bins, each weighted "
                        "equally, of |mean top score - accuracy|)")
def ace(scores: torch.Tensor, targets: torch.Tensor) -> float:
    confidence, predicted = scores.float().nan_to_num(0.0).max(1)
    correct = (predicted == targets).float()
    order = confidence.argsort(stable=True)  # tied scores stay in row order: the bins are a function of the data
    gaps = [(confidence[rows] - correct[rows]).mean().abs() for rows in order.tensor_split(ECE_BINS) if len(rows)]
    return 100.0 * torch.stack(gaps).mean().item()
