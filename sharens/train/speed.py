"""How a run uses its device (precision, memory layout, batching, compilation): options that change no model."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields

import torch


@dataclass(frozen=True)
class Speed:
    """How a run uses its device. None of it changes the model, but every option except `channels_last` on a
    GPU changes float rounding, so a cell records the options it ran with (a plain CPU run records none).

    `bf16`: autocast convolutions and matmuls to bfloat16 (tensor cores). `channels_last`: NHWC layout for
    image models (what cuDNN's fastest convolutions want; oneDNN's too, on a CPU). `compile`: `torch.compile`
    the model. `batched_members`: an independent ensemble's K members train at once, as one `vmap`-ed model
    (`sharens.train.members`), where the backbone allows. `batched_seeds`: so do the seeds of a cell group (a row's
    cells that differ only in their seed), when they run together.
    """

    bf16: bool = False
    channels_last: bool = False
    compile: bool = False
    batched_members: bool = False
    batched_seeds: bool = False

    @classmethod
    def for_device(cls, device: torch.device, extra: Iterable[str] = ()) -> Speed:
        """On CUDA: bf16, channels_last, batched members and seeds; `extra` names options to switch on as well
        (compilation costs minutes up front, so it is only ever asked for)."""
        unknown = set(extra) - set(SPEED_OPTIONS)
        if unknown:
            raise ValueError(f"unknown speed option(s) {sorted(unknown)}; known: {', '.join(SPEED_OPTIONS)}")
        cuda = device.type == "cuda"
        on = dict.fromkeys(("bf16", "channels_last", "batched_members", "batched_seeds"), cuda)
        return cls(**on | dict.fromkeys(extra, True))

    def config(self, members: int = 1, batchable: bool = True, seeds: int = 1) -> dict:
        """The options that are on and act on a cell of `members` networks, one of `seeds` seeds (batching needs
        K > 1 members, or seeds, of a `batchable` backbone): what the cell's spec records."""
        acts = {"batched_members": members > 1 and batchable, "batched_seeds": seeds > 1 and batchable}
        return {k: v for k, v in asdict(self).items() if v and acts.get(k, True)}

    def prepare(self, model: torch.nn.Module) -> Callable:
        """Lay out `model` for this speed; return the callable that runs its forward pass."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return torch.compile(model) if self.compile else model

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()


FP32 = Speed()
SPEED_OPTIONS = tuple(f.name for f in fields(Speed))
