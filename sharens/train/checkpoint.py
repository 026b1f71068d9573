"""A training run's state after its last finished epoch, on disk.

A cell too long for one sitting (a CNN on the full CIFAR-10 split on a CPU, or on
a GPU lease whose commands stop after minutes) resumes at the epoch after the
last one saved, and ends with the numbers it would have had in one go: the
weights, the optimizer and schedule, both random streams and the stopping rule's
bookkeeping are saved together. A file written on another device (another GPU,
CPU model or thread count) or with other device options (`speed.Speed`: a
cell's key leaves them out) is not resumed from, since it would give other numbers.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sharens.atomic import atomic_path
from sharens.provenance import device_name

EVERY_SECONDS = 60.0  # a run saves its state after an epoch that ends at least this long after its last save


def _device(device: torch.device) -> str:
    return device_name(device, torch.get_num_threads())


def save(path: Path, device: torch.device, options: dict, state: dict) -> None:
    """Write `state` (tensors and plain containers) with the random streams of this process and the device
    `options` it ran with, atomically."""
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    with atomic_path(path) as tmp:
        torch.save({**state, "rng": rng, "device": _device(device), "options": options}, tmp)


def load(path: Path | None, device: torch.device, options: dict) -> dict | None:
    """The state saved at `path` with the process's random streams restored; None when there is none, it does not
    read, or another device or other device `options` wrote it (the run then starts from its first epoch). A file
    from before options were saved is taken as written with these."""
    if path is None or not Path(path).is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError):
        return None
    if state.get("device") != _device(device) or state.get("options", options) != options:
        return None
    torch.set_rng_state(state["rng"]["torch"].cpu())
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), device)
    return state
