"""How many heads become one prediction.

All functions take logits shaped (samples, heads, classes) and one weight per
head, so the same code votes the heads of one SE network and the members of an
independent ensemble.
"""

from __future__ import annotations

import torch

RULES = ("soft", "hard", "accuracy")


def soft_vote(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Scores sum_h w_h * softmax(logits_h): the paper's vote."""
    return torch.einsum("nhc,h->nc", logits.softmax(-1), weights.to(logits.dtype))


def hard_vote(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Scores sum_h w_h * onehot(argmax logits_h): weighted majority."""
    onehot = torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1])
    return torch.einsum("nhc,h->nc", onehot.to(logits.dtype), weights.to(logits.dtype))


def head_accuracies(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Accuracy of every head on its own, shape (heads,)."""
    return (logits.argmax(-1) == targets[:, None]).float().mean(0)


def predict(
    logits: torch.Tensor,
    rule: str = "soft",
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Class predictions by `rule`.

    `soft` and `hard` use `weights` (default uniform); `accuracy` is a soft vote
    whose weights must be the heads' accuracies on held-out data
    (see `head_accuracies`): the paper's suggestion for heads that differ a lot.
    """
    if rule not in RULES:
        raise ValueError(f"unknown voting rule {rule!r}; choose one of {RULES}")
    if weights is None:
        if rule == "accuracy":
            raise ValueError("rule 'accuracy' needs weights: the heads' held-out accuracies")
        weights = torch.ones(logits.shape[1], device=logits.device)
    vote = hard_vote if rule == "hard" else soft_vote
    return vote(logits, weights).argmax(-1)
