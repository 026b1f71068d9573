"""One training loop for every benchmark, data on the device.

The whole training set is a pair of tensors on the device; each epoch is one
`randperm` and a slice per mini-batch (optionally augmented on the device, a
whole batch at once), so there is no per-sample Python work. A `Preset` says
which optimizer and learning-rate schedule: the SE paper's Adam with exponential
decay, or He et al.'s SGD with momentum, weight decay and step decay.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from sharens.model.ensemble import SharingEnsemble
from sharens.train import checkpoint as checkpoints
from sharens.train.presets import FIT_ACCURACY, MIN_IMPROVEMENT, STOP_RULES, Preset
from sharens.train.speed import FP32, Speed

# a cross-entropy this large, per unit of head weight, means training has blown up. Per head, because an SE
# loss sums 20-50 heads: an absolute bound on the sum once stopped SE runs that went on to learn.
EXPLODED_LOSS = 1e4
@dataclass
class TrainResult:
    seconds: float
    steps: int
    samples: int
    final_loss: float
    diverged_at_step: int | None = None
    # per epoch, what cell health is judged on: training loss per unit of head weight (comparable to the class
    # prior's entropy) and the soft vote's accuracy on the training batches (augmented, if augmentation is on)
    epoch_loss: list[float] = field(default_factory=list)
    epoch_train_accuracy: list[float] = field(default_factory=list)
    heldout_loss: list[float] = field(default_factory=list)  # per epoch, on the held-out rows, if any
    best_epoch: int | None = None  # 1-based epoch whose weights the model keeps, when stopping on held-out loss
    # "epochs" (ran them all), "converged" (the monitored loss stopped improving), "fitted" (the training set is
    # fitted, under the training-loss rule), "diverged"
    stopped: str = "epochs"
    resumed_after: list[int] = field(default_factory=list)  # epochs after which it resumed from a checkpoint

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else math.nan


def sync_device(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so a clock reads the work's end."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def heldout_loss(model: SharingEnsemble, x: torch.Tensor, y: torch.Tensor, speed: Speed = FP32) -> float:
    """Mean loss per unit of head weight on rows the model does not train on (eval mode)."""
    logits = predict_logits(model, x, speed=speed)
    loss = float(model.loss(logits, y)) / float(model.head_weights.sum())
    model.train()
    return loss


class Progress:
    """One model's run, epoch by epoch: its curves, the divergence check, the stopping rule and the weights it
    keeps. `train` keeps one, `members.train_members` one per member, so both decide alike."""

    def __init__(self, total_head_weight: float, steps_per_epoch: int, patience: int | None, stop_on: str):
        if stop_on not in STOP_RULES:
            raise ValueError(f"stop_on must be one of {STOP_RULES}, not {stop_on!r}")
        self.result = TrainResult(0.0, 0, 0, math.nan)
        self.total_head_weight, self.steps_per_epoch = total_head_weight, steps_per_epoch
        self.patience, self.stop_on = patience, stop_on
        self.step, self.done, self.kept = 0, False, None
        self._best_loss, self._best_at = math.inf, 0

    def end_epoch(self, epoch: int, losses: torch.Tensor, hits: torch.Tensor,
                  heldout_loss: Callable[[], float] | None, state: Callable[[], dict]) -> None:
        """Book one finished epoch (`losses`, `hits`: per step, on the device); set `done` when the model stops.

        `state()` returns a copy of the model's weights: taken at the best held-out epoch, and when it stops."""
        result = self.result
        bad = ~torch.isfinite(losses) | (losses > EXPLODED_LOSS * self.total_head_weight)
        if bad.any():
            first_bad = int(bad.nonzero()[0])
            result.diverged_at_step, result.stopped = self.step + first_bad, "diverged"
            result.final_loss = float(losses[first_bad])
            self.step += first_bad
            self._stop(state)
            return
        self.step += self.steps_per_epoch
        result.final_loss = float(losses[-1])
        result.epoch_loss.append(losses.mean().item() / self.total_head_weight)
        result.epoch_train_accuracy.append(100.0 * hits.mean().item())
        if heldout_loss is not None:
            result.heldout_loss.append(heldout_loss())
        if self.patience is not None and self.stop_on == "train_loss":
            if result.epoch_train_accuracy[-1] >= FIT_ACCURACY:
                result.stopped = "fitted"
                self._stop(state)
            elif result.epoch_loss[-1] < (1 - MIN_IMPROVEMENT) * self._best_loss:
                self._best_loss, self._best_at = result.epoch_loss[-1], epoch
            elif epoch - self._best_at >= self.patience:
                result.stopped = "converged"
                self._stop(state)
        elif heldout_loss is not None and self.patience is not None:
            if result.heldout_loss[-1] < self._best_loss:
                self._best_loss, result.best_epoch = result.heldout_loss[-1], epoch
                self.kept = state()
            elif epoch - result.best_epoch >= self.patience:
                result.stopped = "converged"
                self.done = True

    def state_dict(self) -> dict:
        """What a checkpoint keeps of the run so far (taken between epochs, while it has not stopped)."""
        return {"result": asdict(self.result), "step": self.step, "kept": self.kept,
                "best": (self._best_loss, self._best_at)}

    def load_state_dict(self, state: dict) -> None:
        self.result, self.step, self.kept = TrainResult(**state["result"]), state["step"], state["kept"]
        self._best_loss, self._best_at = state["best"]

    def _stop(self, state: Callable[[], dict]) -> None:
        self.done, self.kept = True, state()

    def finish(self, seconds: float, batch_size: int) -> TrainResult:
        """The run's result; `kept` holds the weights it stopped with or the best held-out epoch's, if either
        (else the model's final weights are the ones to keep)."""
        self.result.seconds, self.result.steps = seconds, self.step
        self.result.samples = self.step * batch_size
        return self.result


def train(
    model: SharingEnsemble,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    preset: Preset,
    epochs: int,
    batch_size: int,
    seed: int,
    desc: str = "train",
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    speed: Speed = FP32,
    heldout: tuple[torch.Tensor, torch.Tensor] | None = None,
    patience: int | None = None,
    stop_on: str = "heldout_loss",
    checkpoint: Path | None = None,
) -> TrainResult:
    """Train `model` in place on (x, y), which already live on the model's device.

    `augment(batch, generator)`, if given, transforms each mini-batch on the
    device; `speed` picks precision, memory layout and compilation. Stops
    early, returning `diverged_at_step`, when the loss turns NaN/inf or exceeds
    `EXPLODED_LOSS` per unit of head weight. Losses stay on the device and are
    read once per epoch, so the check costs no synchronisation per step.

    With `heldout` rows, their loss is measured after every epoch; with
    `patience` too, training stops once it has not improved for `patience`
    epochs (`epochs` is then the cap), and the model keeps its weights of the
    best epoch: epochs are chosen on rows it never trains on, never on test.
    With `stop_on="train_loss"` and `patience`, training instead runs until it
    converges on its own rows: it stops once the vote fits the training set
    (`FIT_ACCURACY`) or the training loss has not fallen by `MIN_IMPROVEMENT`
    of its best for `patience` epochs, and keeps its final weights (for data
    sets whose held-out slice is too small to choose epochs on).

    With a `checkpoint` path, the run's state is saved there after an epoch
    (at most every `checkpoint.EVERY_SECONDS`) and, if a saved state is there
    when it starts, it resumes after that epoch (`sharens.train.checkpoint`); the
    file is removed when the run ends.
    """
    device = x.device
    batch_size = min(batch_size, len(x))
    steps_per_epoch = len(x) // batch_size  # the ragged last batch is dropped (batch norm)
    progress = Progress(float(model.head_weights.sum()), steps_per_epoch, patience, stop_on)
    optimizer, schedule = optimizer_for(model.parameters(), preset, epochs * steps_per_epoch)
    generator = torch.Generator(device=device).manual_seed(seed)
    losses = torch.empty(steps_per_epoch, device=device)
    hits = torch.empty(steps_per_epoch, device=device)
    forward = speed.prepare(model)

    def state() -> dict:
        return copy.deepcopy(model.state_dict())

    done_epochs, seconds_before = 0, 0.0
    saved = checkpoints.load(checkpoint, device, asdict(speed))
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        generator.set_state(saved["generator"].cpu())
        progress.load_state_dict(saved["progress"])
        done_epochs, seconds_before = saved["epoch"], saved["seconds"]
        progress.result.resumed_after.append(done_epochs)
    model.train()
    sync_device(device)
    start = last_saved = time.perf_counter()
    for epoch in tqdm(range(done_epochs + 1, epochs + 1), desc=desc, leave=False, disable=None):
        order = torch.randperm(len(x), device=device, generator=generator)
        for b in range(steps_per_epoch):
            idx = order[b * batch_size : (b + 1) * batch_size]
            batch = speed.batch(x[idx] if augment is None else augment(x[idx], generator))
            with speed.autocast(device):
                logits = forward(batch).float()
            loss = model.loss(logits, y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses[b] = loss.detach()
            hits[b] = vote_hits(logits.detach(), y[idx])
        measure = None if heldout is None else (lambda: heldout_loss(model, *heldout, speed=speed))
        progress.end_epoch(epoch, losses, hits, measure, state)
        if progress.done:
            break
        if checkpoint is not None and time.perf_counter() - last_saved >= checkpoints.EVERY_SECONDS:
            sync_device(device)
            last_saved = time.perf_counter()
            checkpoints.save(checkpoint, device, asdict(speed), {
                "epoch": epoch, "seconds": seconds_before + time.perf_counter() - start,
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "generator": generator.get_state(),
                "progress": progress.state_dict()})
    sync_device(device)
    result = progress.finish(seconds_before + time.perf_counter() - start, batch_size)
    if result.best_epoch is not None:
        model.load_state_dict(progress.kept)
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    return result


def vote_hits(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Share of rows the soft vote of (..., rows, heads, classes) logits gets right, per leading index."""
    return (logits.softmax(-1).mean(-2).argmax(-1) == y).float().mean(-1)


def optimizer_for(parameters: Iterable[torch.Tensor], preset: Preset, total_steps: int):
    """(optimizer, per-step scheduler) of a preset; fused kernels: one launch for all parameters."""
    parameters = list(parameters)
    if preset.optimizer == "adam":
        optimizer = torch.optim.Adam(parameters, lr=preset.lr0, weight_decay=preset.weight_decay, fused=True)
    else:
        optimizer = torch.optim.SGD(parameters, lr=preset.lr0, momentum=preset.momentum,
                                    weight_decay=preset.weight_decay, fused=True)
    if preset.cosine:
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, total_steps - 1),
                                                                     eta_min=preset.lr_min)
    if not preset.milestones:
        gamma = (preset.lr_min / preset.lr0) ** (1 / max(1, total_steps - 1))
        return optimizer, torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)
    steps = [round(m * total_steps) for m in preset.milestones]
    warm = preset.warmup_lr / preset.lr0

    def factor(step: int) -> float:
        if step < preset.warmup_steps:
            return warm
        return 0.1 ** sum(step >= s for s in steps)

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@torch.no_grad()
def predict_logits(model: SharingEnsemble, x: torch.Tensor, batch_size: int = 4096,
                   speed: Speed = FP32) -> torch.Tensor:
    """Logits of every head on x, (samples, heads, classes), in eval mode, as float32."""
    model.eval()
    with speed.autocast(x.device):
        return torch.cat([model(speed.batch(x[i : i + batch_size])).float() for i in range(0, len(x), batch_size)])
