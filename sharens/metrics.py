"""What a cell measures about a vote's class scores: every metric registered by name.

A metric takes class scores (samples, classes), rows summing to 1, and the
true labels, and returns one number. A new metric is one decorated function:
every cell records it for every vote, and every report shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Metric:
    name: str
    compute: Callable[[torch.Tensor, torch.Tensor], float]
    description: str


METRICS: dict[str, Metric] = {}


def register_metric(name: str, description: str):
    """Decorator: make `fn(scores, targets) -> float` the metric called `name`."""
    def add(fn):
        if name in METRICS:
            raise ValueError(f"metric {name!r} is registered twice")
        METRICS[name] = Metric(name, fn, description)
        return fn
    return add


@register_metric("accuracy", "test accuracy (%): the top-scoring class is the label")
def accuracy(scores: torch.Tensor, targets: torch.Tensor) -> float:
    return 100.0 * (scores.argmax(-1) == targets).float().mean().item()
