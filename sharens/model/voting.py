"""How many heads become one prediction: every rule registered by name.

A vote takes the test logits of all voters, shaped (samples, heads, classes),
and what it may need beside them (`Ballot`), and returns class scores
(samples, classes) that sum to 1 per row, or None where the rule does not
apply to the cell (accuracy weights need held-out rows). The same rules vote
the heads of one SE network and the members of an independent ensemble. A new
rule is one decorated function: every network cell records it, and every
report shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from sharens.registry import lookup, registrar


@dataclass(frozen=True)
class Ballot:
    """What a rule may use beside the logits; most rules use neither field."""

    targets: torch.Tensor | None = None  # the test labels (only `best_head` looks, and says so)
    heldout_accuracy: torch.Tensor | None = None  # each head's accuracy on held-out train rows, if measured


@dataclass(frozen=True)
class Vote:
    name: str
    scores: Callable[[torch.Tensor, Ballot], torch.Tensor | None]
    description: str


VOTES: dict[str, Vote] = {}
# decorator: @register_vote(name, description) makes `fn(logits, ballot) -> scores or None` the vote `name`
register_vote = registrar(VOTES, "vote", Vote)


def get_vote(name: str) -> Vote:
    return lookup(VOTES, "vote", name)


def vote(logits: torch.Tensor, rule: str = "soft", ballot: Ballot = Ballot()) -> torch.Tensor:
    """Class scores (samples, classes) of the heads' `logits` (samples, heads, classes) under a registered rule;
    only `accuracy_weighted` and `best_head` need a `ballot` (held-out accuracies, test labels)."""
    scores = get_vote(rule).scores(logits, ballot)
    if scores is None:
        raise ValueError(f"the {rule!r} vote needs what its ballot lacks: {get_vote(rule).description}")
    return scores


def soft_vote(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Scores sum_h w_h * softmax(logits_h) / sum_h w_h."""
    weights = weights.to(logits.dtype)
    return torch.einsum("nhc,h->nc", logits.softmax(-1), weights) / weights.sum()


def hard_vote(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Scores sum_h w_h * onehot(argmax logits_h) / sum_h w_h: weighted majority."""
    weights = weights.to(logits.dtype)
    onehot = torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return torch.einsum("nhc,h->nc", onehot, weights) / weights.sum()


def head_accuracies(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Accuracy of every head on its own, shape (heads,)."""
    return (logits.argmax(-1) == targets[:, None]).float().mean(0)


def _uniform(logits: torch.Tensor) -> torch.Tensor:
    return torch.ones(logits.shape[1], device=logits.device)


@register_vote("soft", "mean of the heads' softmax (the paper's rule)")
def _soft(logits: torch.Tensor, ballot: Ballot) -> torch.Tensor:
    return soft_vote(logits, _uniform(logits))


@register_vote("hard", "majority of the heads' top classes")
def _hard(logits: torch.Tensor, ballot: Ballot) -> torch.Tensor:
    return hard_vote(logits, _uniform(logits))


@register_vote("accuracy_weighted", "soft vote weighted by each head's accuracy on held-out train rows "
                                    "(the paper's suggestion for heads that differ a lot)")
def _accuracy_weighted(logits: torch.Tensor, ballot: Ballot) -> torch.Tensor | None:
    if ballot.heldout_accuracy is None:
        return None
    return soft_vote(logits, ballot.heldout_accuracy)


@register_vote("last_head", "the deepest head alone (how a deeply-supervised net predicts)")
def _last_head(logits: torch.Tensor, ballot: Ballot) -> torch.Tensor:
    return logits[:, -1].softmax(-1)


@register_vote("best_head", "the single head best on the test rows (chosen on test: an optimistic bound)")
def _best_head(logits: torch.Tensor, ballot: Ballot) -> torch.Tensor:
    if ballot.targets is None:
        raise ValueError("the best_head vote picks the head best on the test labels: pass Ballot(targets=...)")
    return logits[:, int(head_accuracies(logits, ballot.targets).argmax())].softmax(-1)
