"""Backbones that expose their hidden layers as taps, registered by name.

Each architecture exists once; `SharingEnsemble` decides which taps get heads,
so a baseline and its SE variant are built from the same backbone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from sharens.ensemble import TappedBackbone


def pyramid_widths(first: int, depth: int, shrink: float = math.sqrt(2)) -> list[int]:
    """Layer widths shrinking by `shrink` per layer (the paper's ~1/sqrt(2) pyramid)."""
    return [max(1, round(first / shrink**i)) for i in range(depth)]


class PyramidDNN(TappedBackbone):
    """Fully connected layers, each FC -> batch norm -> leaky ReLU (paper section 1).

    Taps after every `tap_every`-th layer, and always after the last one.
    """

    def __init__(self, in_features: int, widths: Sequence[int], tap_every: int = 2):
        super().__init__()
        self.layers = nn.ModuleList()
        self.tap_features = {}
        self._tap_after = set()
        for i, width in enumerate(widths, start=1):
            self.layers.append(
                nn.Sequential(nn.Linear(in_features, width), nn.BatchNorm1d(width), nn.LeakyReLU())
            )
            if i % tap_every == 0 or i == len(widths):
                self.tap_features[f"L{i}"] = width
                self._tap_after.add(i)
            in_features = width

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        taps = {}
        for i, layer in enumerate(self.layers, start=1):
            x = layer(x)
            if i in self._tap_after:
                taps[f"L{i}"] = x
        return taps


class MLP(TappedBackbone):
    """The gcForest paper's MLP baselines: FC -> ReLU layers (e.g. 70-50), a tap after each."""

    def __init__(self, in_features: int, widths: Sequence[int]):
        super().__init__()
        self.layers = nn.ModuleList()
        self.tap_features = {}
        for i, width in enumerate(widths, start=1):
            self.layers.append(nn.Sequential(nn.Linear(in_features, width), nn.ReLU()))
            self.tap_features[f"L{i}"] = width
            in_features = width

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        taps = {}
        for i, layer in enumerate(self.layers, start=1):
            x = layer(x)
            taps[f"L{i}"] = x
        return taps


class DeepLSTM(TappedBackbone):
    """Stacked LSTM layers over a row reshaped to (steps, features); a tap after each layer.

    A tap is the layer's whole output sequence, flattened, so a head sees every
    step (the sEMG protocol: 3,000 samples as 6 steps x 500).
    """

    def __init__(self, in_features: int, steps: int, hidden: int, layers: int):
        super().__init__()
        if in_features % steps:
            raise ValueError(f"{in_features} inputs do not split into {steps} equal steps")
        self.steps, self.step_features = steps, in_features // steps
        sizes = [self.step_features] + [hidden] * layers
        self.layers = nn.ModuleList(
            nn.LSTM(sizes[i], hidden, batch_first=True) for i in range(layers)
        )
        self.tap_features = {f"lstm{i}": steps * hidden for i in range(1, layers + 1)}
        # torch's flop counter does not see inside nn.LSTM: count its 4 gate matmuls ourselves.
        self.uncounted_flops = sum(2 * steps * 4 * hidden * (n + hidden) for n in sizes[:-1])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = x.view(-1, self.steps, self.step_features)
        taps = {}
        for i, layer in enumerate(self.layers, start=1):
            x, _ = layer(x)
            taps[f"lstm{i}"] = x
        return taps


BACKBONES = {"pyramid_dnn": PyramidDNN, "mlp": MLP, "deep_lstm": DeepLSTM}


def build_backbone(name: str, in_features: int, **options) -> TappedBackbone:
    """Build a registered backbone by name (timm-style factory)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}")
    if "first_width" in options:  # pyramid given by its first width and depth
        options["widths"] = pyramid_widths(options.pop("first_width"), options.pop("depth"))
    return BACKBONES[name](in_features, **options)
