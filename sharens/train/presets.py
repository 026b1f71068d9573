"""What a table may declare about training: optimizer presets (the SE paper's Adam with exponential decay, He et
al.'s SGD with momentum, weight decay and step decay) and the constants of the loop's stopping rules. Declaring a
table imports this, never the loop itself.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

# the stopping rules of `train`: on the held-out rows' loss (choose epochs on unseen rows), or on the training
# loss (train until converged on its own rows: the vote fits the training set, or the loss stops falling)
STOP_RULES = ("heldout_loss", "train_loss")
FIT_ACCURACY = 99.0  # % of training rows the vote gets right: the net fits its training set, epochs teach no more
MIN_IMPROVEMENT = 0.01  # share of its best the training loss must fall by to count as still improving


@dataclass(frozen=True)
class Preset:
    """Optimizer hyper-parameters.

    Default: Adam whose rate decays exponentially per step from `lr0` to `lr_min`.
    With `optimizer="sgd"`: SGD with `momentum` and `weight_decay`; `milestones`
    (fractions of the run) switch to step decay, the rate divided by 10 at each;
    `warmup_steps` steps at `warmup_lr` first (He et al.'s ResNet-110). With
    `cosine`, the rate instead follows half a cosine from `lr0` to `lr_min`
    over the run (each cycle of a snapshot ensemble is such a run).
    """

    name: str
    lr0: float
    lr_min: float
    why: str
    optimizer: str = "adam"
    momentum: float = 0.0
    weight_decay: float = 0.0
    milestones: tuple[float, ...] = ()
    warmup_steps: int = 0
    warmup_lr: float = 0.0
    cosine: bool = False

    def __post_init__(self):
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"preset {self.name}: optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if any(not 0 < m < 1 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"preset {self.name}: milestones must be increasing fractions of the run in (0, 1)")

    def config(self) -> dict:
        """What determines a result: the core fields, plus every other field not at its default."""
        core = ("name", "lr0", "lr_min", "why")
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name in core or getattr(self, f.name) != f.default}


def describe(preset: dict) -> str:
    """One line for a report, from a preset's `config()` (as stored with every cell)."""
    if preset.get("optimizer", "adam") == "adam":
        shape = "cosine" if preset.get("cosine") else "exponential per step"
        text = f"Adam, lr {preset['lr0']:g} → {preset['lr_min']:g} {shape}"
    else:
        text = (f"SGD, momentum {preset.get('momentum', 0):g}, weight decay {preset.get('weight_decay', 0):g}, "
                f"lr {preset['lr0']:g}")
    if preset.get("milestones"):
        text += ", divided by 10 at " + ", ".join(f"{m:.0%}" for m in preset["milestones"]) + " of the run"
    if preset.get("warmup_steps"):
        text += f", after {preset['warmup_steps']} warm-up steps at {preset['warmup_lr']:g}"
    return text


PRESETS = {
    "paper": Preset(
        "paper", 0.5, 1e-3,
        "as printed in the paper (Adam, lr 0.5 -> 0.001, exponential decay); "
        "the paper's 'initialization variance 0.5' is ambiguous and not applied",
    ),
    "tuned": Preset(
        "tuned", 3e-3, 3e-5,
        "a conventional Adam rate decayed 100x over the run; fixed a priori, never tuned on test data",
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
