"""Forward FLOPs per sample of a network, in all and up to each tap: what stopping early at a tap costs.

torch's flop counter sees the matmuls and convolutions; a backbone adds what it cannot see (nn.LSTM's gate
matmuls) as `uncounted_tap_flops`, the FLOPs of the layers that end at each tap. Costs up to a tap are read
by stamping every tensor an operation creates with the running count: a tap's stamp is the cost of
computing it, whatever the backbone's shape (residual blocks, pooled readouts).
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from sharens.model.ensemble import SharingEnsemble


class _CreationStamps(TorchDispatchMode):
    """Inside a FlopCounterMode: {id of each tensor an operation returned: the FLOPs counted when it was made}.

    An operation that writes in place returns its input, whose stamp then moves on to the later count, as it
    should: the tensor holds the later value."""

    def __init__(self, counter: FlopCounterMode):
        super().__init__()
        self.counter, self.stamps = counter, {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        total = self.counter.get_total_flops()
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self.stamps[id(leaf)] = total
        return out


def _uncounted(model: SharingEnsemble) -> dict[str, float]:
    return getattr(model.backbone, "uncounted_tap_flops", {})


def flops_per_sample(model: SharingEnsemble, x: torch.Tensor) -> float | None:
    """Forward FLOPs per sample of the whole model (None if nothing was counted)."""
    return list(tap_flops(model, x).values())[-1] or None


def tap_flops(model: SharingEnsemble, x: torch.Tensor) -> dict[str, float]:
    """{tap with heads: forward FLOPs per sample of everything a prediction from the heads up to that tap needs}
    (the backbone up to the tap, the heads of that tap and of every shallower one), in depth order. The last
    equals `flops_per_sample`."""
    model.eval()
    uncounted = _uncounted(model)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        with _CreationStamps(counter) as clock:
            activations = model.backbone(x[:2])
        at_tap = {tap: clock.stamps[id(activations[tap])] for tap in model.taps}
        heads = {}
        for tap in model.taps:
            before = counter.get_total_flops()
            model.heads[tap](activations[tap])
            heads[tap] = counter.get_total_flops() - before
    costs, head_sum = {}, 0.0
    for tap in model.taps:
        head_sum += heads[tap]
        # the backbone's own uncounted FLOPs up to this tap (its taps are in depth order)
        hidden = sum(v for t, v in uncounted.items()
                     if list(activations).index(t) <= list(activations).index(tap))
        costs[tap] = (at_tap[tap] + head_sum) / 2 + hidden
    return costs
