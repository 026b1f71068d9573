"""The deep sharing ensemble (SE): J softmax heads on each tapped hidden layer.

A backbone returns its hidden activations at named taps. `SharingEnsemble` puts
J independent linear heads on each chosen tap, trains on the weighted sum of all
heads' cross-entropies, and predicts by voting over every head. The baseline of
a pair is the same class with one head on the last tap, so the two differ only
in their heads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def tap_of(head_name: str) -> str:
    """The tap a head sits on, from its name (`<tap>/h<j>`); an ensemble member's name is its own group."""
    return head_name.split("/")[0]


DEFAULT_INIT = "PyTorch default"  # each layer as its own constructor draws it (DEFAULT_INIT_MEANING)
DEFAULT_INIT_MEANING = ("linear and convolution layers Kaiming-uniform (a = sqrt 5) with bias uniform in "
                        "±1/sqrt(fan_in), LSTM weights and biases uniform in ±1/sqrt(hidden size), embeddings N(0, 1), "
                        "batch norm weight 1 and bias 0")


class TappedBackbone(nn.Module):
    """A network whose `forward` returns {tap name: activation}, in depth order.

    Subclasses set `tap_features` ({tap name: flattened width}) so heads can be
    built without a dummy forward pass. The last tap is the network's top layer.
    """

    tap_features: dict[str, int]
    init: str = DEFAULT_INIT  # how its layers were initialised, as a report states it
    batchable: bool = True  # torch.func.vmap can run copies of it at once (see sharens.train.members)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError


class FusedHeads(nn.Module):
    """J independent linear classifiers on one tap, computed as one matmul.

    The weight is J classifiers stacked along the output axis, so the result is
    identical to J separate `nn.Linear` layers (each initialised as one would be:
    the fan-in is the same) at the cost of a single GEMM.
    """

    def __init__(self, in_features: int, num_classes: int, num_heads: int):
        super().__init__()
        self.num_heads, self.num_classes = num_heads, num_classes
        self.weight = nn.Parameter(torch.empty(num_heads * num_classes, in_features))
        self.bias = nn.Parameter(torch.empty(num_heads * num_classes))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's default
        bound = 1 / math.sqrt(in_features)
        nn.init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_linears(cls, linears: Sequence[nn.Linear]) -> FusedHeads:
        """Fuse separately built heads (used to prove the fusion is exact)."""
        first = linears[0]
        fused = cls(first.in_features, first.out_features, len(linears))
        with torch.no_grad():
            fused.weight.copy_(torch.cat([lin.weight for lin in linears]))
            fused.bias.copy_(torch.cat([lin.bias for lin in linears]))
        return fused

    def forward(self, activation: torch.Tensor) -> torch.Tensor:
        """(batch, ...) -> logits (batch, heads, classes)."""
        logits = F.linear(activation.flatten(1), self.weight, self.bias)
        return logits.view(-1, self.num_heads, self.num_classes)


class SharingEnsemble(nn.Module):
    """Backbone + `heads_per_tap` heads on every tap in `taps`.

    Args:
        backbone: a `TappedBackbone`.
        num_classes: classes of the task.
        heads_per_tap: J, heads on each tap (the paper uses 5).
        taps: which taps get heads; default all of the backbone's taps.
        tap_weights: loss and vote weight lambda per tap; default 1 for all.
    """

    def __init__(
        self,
        backbone: TappedBackbone,
        num_classes: int,
        heads_per_tap: int = 5,
        taps: Sequence[str] | None = None,
        tap_weights: Mapping[str, float] | None = None,
    ):
        super().__init__()
        taps = list(backbone.tap_features if taps is None else taps)
        unknown = [t for t in taps if t not in backbone.tap_features]
        if unknown or not taps:
            raise ValueError(
                f"taps {unknown or taps} not in the backbone's taps "
                f"{list(backbone.tap_features)}"
            )
        if heads_per_tap < 1:
            raise ValueError(f"heads_per_tap must be >= 1, got {heads_per_tap}")
        tap_weights = dict(tap_weights or {})
        if set(tap_weights) - set(taps):
            raise ValueError(f"tap_weights names taps {sorted(set(tap_weights) - set(taps))} without heads")
        self.backbone = backbone
        self.taps = taps
        self.heads = nn.ModuleDict(
            {t: FusedHeads(backbone.tap_features[t], num_classes, heads_per_tap) for t in taps}
        )
        weights = [tap_weights.get(t, 1.0) for t in taps for _ in range(heads_per_tap)]
        self.register_buffer("head_weights", torch.tensor(weights, dtype=torch.float32))
        self.head_names = [f"{t}/h{j}" for t in taps for j in range(heads_per_tap)]  # see `tap_of`

    @classmethod
    def baseline(cls, backbone: TappedBackbone, num_classes: int) -> SharingEnsemble:
        """The plain network: one head after the last layer."""
        return cls(backbone, num_classes, heads_per_tap=1, taps=[list(backbone.tap_features)[-1]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every head, (batch, heads, classes), heads in tap order."""
        activations = self.backbone(x)
        return torch.cat([self.heads[t](activations[t]) for t in self.taps], dim=1)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """sum over heads of lambda_h * CE(head_h, y), each CE a batch mean."""
        batch, heads, classes = logits.shape
        per_head = F.cross_entropy(
            logits.reshape(batch * heads, classes),
            targets.repeat_interleave(heads),
            reduction="none",
        ).view(batch, heads).mean(0)
        return per_head @ self.head_weights
