"""What the paper's vanishing-gradient claim is about, measured: the gradient that reaches the first layer."""

from __future__ import annotations

import torch

from sharens.model.ensemble import SharingEnsemble


def first_layer(model: SharingEnsemble) -> torch.nn.Parameter:
    """The weight of the backbone's first layer (its first parameter with more than one dimension)."""
    return next(p for p in model.backbone.parameters() if p.dim() > 1)


def first_layer_gradient_norm(model: SharingEnsemble, x: torch.Tensor, y: torch.Tensor) -> float:
    """L2 norm of d(training loss)/d(first-layer weight) on one batch, in training mode, leaving no grads behind."""
    model.train()
    weight = first_layer(model)
    (grad,) = torch.autograd.grad(model.loss(model(x), y), weight)
    return grad.norm().item()
