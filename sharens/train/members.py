"""K independent ensemble members trained at once, as one batched model.

A small network leaves a device mostly idle: its step is a handful of small
kernels, each launched (and dispatched from Python) K times when the members
train one after another. `torch.func.stack_module_state` stacks the K members'
weights along a new leading axis and `vmap` runs one forward and backward over
all of them, so each kernel runs once on K times the work.

The same holds for the seeds of a cell group (one row of a table, its seeds
trained at once): each member may train on its own rows of the training set
and judge its stopping rule on its own held-out rows, as a seed's hold-out
split gives them.

Nothing is shared but the kernels. Each member keeps its own initialisation (it
is built from its own seed before stacking), its own rows, data order and
augmentation (its own generator, seeded as `train` seeds it), its own
batch-norm statistics (the buffers are stacked too) and its own stopping rule
(`loop.Progress`); the summed loss gives each member exactly its own
gradient, and Adam and SGD update every weight on its own. So member k equals
a separate `train` run of its seed up to float rounding (batched kernels sum
in another order), which `tests/train/test_members.py` checks.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import torch
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from sharens.model.ensemble import SharingEnsemble
from sharens.train.loop import Progress, TrainResult, optimizer_for, sync_device, vote_hits
from sharens.train.presets import Preset
from sharens.train.speed import FP32, Speed


def train_members(
    models: list[SharingEnsemble],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    seeds: list[int],
    preset: Preset,
    epochs: int,
    batch_size: int,
    desc: str = "train members",
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    speed: Speed = FP32,
    rows: torch.Tensor | None = None,
    heldout_rows: torch.Tensor | None = None,
    patience: int | None = None,
    stop_on: str = "heldout_loss",
) -> list[TrainResult]:
    """Train `models` (same architecture, each initialised from its own seed) in place, as `train` would train
    each with its seed in `seeds`; one `TrainResult` per member, the batched wall time split evenly.

    `rows` (members, n) are the rows of (x, y) each member trains on, as `train(model, x[rows[k]], ...)` would
    (default: all of them); `heldout_rows` (members, m) those whose loss its stopping rule watches, as `train`'s
    `heldout=(x[heldout_rows[k]], y[heldout_rows[k]])`. A member that stops early keeps the weights its rule
    keeps while the others train on; its extra steps are computed and discarded. `speed`'s precision applies;
    layout and compilation do not (vmap runs the model).
    """
    device, members = x.device, len(models)
    if rows is None:
        rows = torch.arange(len(x), device=device).expand(members, -1)
    if len(rows) != members or (heldout_rows is not None and len(heldout_rows) != members):
        raise ValueError(f"{members} members need one set of rows each; got {len(rows)} training and "
                         f"{'no' if heldout_rows is None else len(heldout_rows)} held-out sets")
    heldout = None if heldout_rows is None else (x[heldout_rows], y[heldout_rows])  # (members, m, ...)
    n = rows.shape[1]
    batch_size = min(batch_size, n)
    steps_per_epoch = n // batch_size
    stacked, buffers = stack_module_state(models)
    # each member's weight matrices are kept transposed, (K, in, out): vmap's linear then multiplies by them as
    # stored and their gradients land as stored; stacked as (K, out, in), every step copied the largest of them
    leaves = {name: w.detach().mT.contiguous().requires_grad_() if w.dim() == 3 else w for name, w in stacked.items()}

    def weights() -> dict[str, torch.Tensor]:  # each member's weights, as its modules hold them (fresh views)
        return {name: leaves[name].mT if w.dim() == 3 else leaves[name] for name, w in stacked.items()}

    skeleton = copy.deepcopy(models[0]).to("meta")  # the architecture; vmap feeds it each member's tensors

    def run(member_weights: dict, member_buffers: dict, batch: torch.Tensor) -> torch.Tensor:
        return functional_call(skeleton, (member_weights, member_buffers), (batch,))

    forward = vmap(run)
    member_loss = vmap(models[0].loss)  # every member weights its heads alike
    progress = [Progress(float(models[0].head_weights.sum()), steps_per_epoch, patience, stop_on) for _ in models]
    optimizer, schedule = optimizer_for(leaves.values(), preset, epochs * steps_per_epoch)
    generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
    losses = torch.empty(members, steps_per_epoch, device=device)
    hits = torch.empty(members, steps_per_epoch, device=device)

    def state(k: int) -> Callable[[], dict]:
        return lambda: {name: t[k].detach().clone() for name, t in (weights() | buffers).items()}

    skeleton.train()
    sync_device(device)
    start = time.perf_counter()
    for epoch in tqdm(range(1, epochs + 1), desc=desc, leave=False, disable=None):
        orders = [member_rows[torch.randperm(n, device=device, generator=g)]
                  for member_rows, g in zip(rows, generators, strict=True)]
        for b in range(steps_per_epoch):
            idx = torch.stack([order[b * batch_size : (b + 1) * batch_size] for order in orders])
            batch = x[idx] if augment is None else \
                torch.stack([augment(x[rows], g) for rows, g in zip(idx, generators, strict=True)])
            with speed.autocast(device):
                logits = forward(weights(), buffers, batch).float()
            loss = member_loss(logits, y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()  # member k's weights get exactly the gradient of member k's loss
            optimizer.step()
            schedule.step()
            losses[:, b] = loss.detach()
            hits[:, b] = vote_hits(logits.detach(), y[idx])
        held = None if heldout is None else _heldout_losses(forward, skeleton, weights(), buffers, models[0], heldout,
                                                              speed)
        for k, member in enumerate(progress):
            if not member.done:
                member.end_epoch(epoch, losses[k], hits[k], None if held is None else held[k].item, state(k))
        if all(member.done for member in progress):
            break
    sync_device(device)
    seconds = (time.perf_counter() - start) / members
    for k, (model, member) in enumerate(zip(models, progress, strict=True)):
        model.load_state_dict(member.kept if member.kept is not None else state(k)())
    return [member.finish(seconds, batch_size) for member in progress]


@torch.no_grad()
def _heldout_losses(forward: Callable, skeleton: torch.nn.Module, weights: dict, buffers: dict,
                    model: SharingEnsemble, heldout: tuple[torch.Tensor, torch.Tensor], speed: Speed,
                    batch_size: int = 4096) -> torch.Tensor:
    """Each member's mean loss per unit of head weight on its held-out rows (eval mode), as `heldout_loss`."""
    x, y = heldout  # (members, m, ...), (members, m)
    skeleton.eval()
    with speed.autocast(x.device):
        logits = torch.cat([forward(weights, buffers, x[:, i : i + batch_size]).float()
                            for i in range(0, x.shape[1], batch_size)], dim=1)
    skeleton.train()
    return vmap(model.loss)(logits, y) / float(model.head_weights.sum())
