"""The work order: a table and a profile resolved into cell specs, one per (data set, row, preset, seed).

A `CellSpec` holds everything that determines a cell's numbers, written out
(backbone and options, heads, optimizer fields, epochs, batch, augmentation,
input view, data slice, seed, members, hold-out, device options, CPU threads),
so `execute.run_cell(spec, data)` reads nothing else: no table, no profile,
no import of `benchmarks`. Specs are plain frozen dataclasses, so they pickle
into worker processes and hash into the key a stored cell is found by.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from sharens.model.backbones import BACKBONES
from sharens.model.classic import MAX_ITER
from sharens.suite.table import Profile, Row, Table
from sharens.train.speed import Speed

# intra-op threads of every cell, whatever the schedule: torch's CPU kernels split their sums by thread
# count, so the count is part of what determines a number (sequential and --jobs N runs agree only if fixed)
CELL_THREADS = 1
# NetworkSpec fields added after cells were stored, and their defaults: hashed into a key only when changed
KEYED_ONLY_OFF_DEFAULT = {"stop_on": "heldout_loss", "snapshots": 0}
# the iteration caps scikit-learn cells ran with before ClassicSpec carried its cap: hashed only off them
CAPS_BEFORE_KEYED = {"logistic_regression": 2000, "svm_linear": 5000, "svm_linear_sgd": 50}


@dataclass(frozen=True)
class NetworkSpec:
    """A network cell: what to build, how to train it, how to vote."""

    backbone: str  # a key of sharens.model.backbones.BACKBONES
    options: dict  # the backbone factory's keyword arguments
    inputs: str | None  # the data set's input view (None: its default input)
    heads_per_tap: int | None  # None: the plain network, one head after its last layer
    tap_weights: dict | None
    optimizer: dict  # a presets.Preset's config()
    epochs: int
    batch_size: int
    members: int = 1  # K > 1: an independent ensemble of K plain networks, seeds seed + 1000 k
    vote: str = "soft"  # the registered vote (sharens.model.voting) that gives the cell's accuracy
    holdout: float = 0.0  # seeded share of train never trained on: the stopping rule's and the vote weights' rows
    patience: int | None = None  # stop when the monitored loss has not improved for this many epochs
    stop_on: str = "heldout_loss"  # the loss `patience` watches: a presets.STOP_RULES name
    augment: str | None = None  # a key of sharens.train.augment.AUGMENTATIONS
    probe_gradients: bool = False  # measure the first layer's gradient norm at init and after training
    speed: dict = field(default_factory=dict)  # speed.Speed fields that are on
    # M > 0: a snapshot ensemble, `epochs` split into M cycles of a cosine-annealed preset, M snapshots voted
    snapshots: int = 0


@dataclass(frozen=True)
class ClassicSpec:
    """A scikit-learn cell."""

    estimator: str  # a key of sharens.model.classic
    inputs: str | None
    forest_trees: int
    max_iter: int | None = None  # its solver's iteration cap (sharens.model.classic.MAX_ITER); None: it has none


@dataclass(frozen=True)
class CellSpec:
    table: str
    dataset: str
    row: Row
    preset: str | None  # None for classic models
    seed: int
    profile: str
    train_subset: int | None  # rows kept of each split (a fixed random slice); None: all
    test_subset: int | None
    threads: int = CELL_THREADS
    network: NetworkSpec | None = None
    classic: ClassicSpec | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def key_dict(self) -> dict:
        """What the cell's key hashes: `as_dict` less fields added after cells were stored, when at their
        default (so adding such a field leaves every stored cell's key as it was), and with the device options
        of a plain CPU run: a cell trained on a GPU or with --speed stands for its row wherever it is reported
        (its record keeps the options it ran with, and the report names them), and no run with other options
        redoes it (a checkpoint, though, resumes only under the options that wrote it: `sharens.train.checkpoint`)."""
        spec = self.as_dict()
        if spec["network"]:
            spec["network"]["speed"] = {}
            for name, default in KEYED_ONLY_OFF_DEFAULT.items():
                if spec["network"][name] == default:
                    del spec["network"][name]
        if spec["classic"] and spec["classic"]["max_iter"] == CAPS_BEFORE_KEYED.get(spec["classic"]["estimator"]):
            del spec["classic"]["max_iter"]
        return spec


def plan(table: Table, profile: Profile, seeds: int, presets: list[str], datasets: list[str],
         speed: Speed | None = None) -> list[CellSpec]:
    """Every cell of the table, in the order they run (cheap rows first per data set)."""
    speed = speed or Speed()
    rows = table.rows(profile)
    cells = []
    for dataset in datasets:
        common = {"table": table.id, "dataset": dataset, "profile": profile.name,
                  "train_subset": profile.train_subset, "test_subset": profile.test_subset}
        for seed in range(seeds):
            for row in (r for r in rows if r.variant == "classic"):
                classic = table.classic_model(row.label)
                cells.append(CellSpec(**common, row=row, preset=None, seed=seed,
                                      classic=ClassicSpec(classic.estimator, classic.inputs, profile.forest_trees,
                                                          classic.max_iter or MAX_ITER.get(classic.estimator))))
            for preset in presets:
                for row in (r for r in rows if r.pair is not None):
                    cells.append(CellSpec(**common, row=row, preset=preset, seed=seed,
                                          network=_network(table, profile, dataset, row, preset, speed, seeds)))
    return cells


def _network(table: Table, profile: Profile, dataset: str, row: Row, preset: str, speed: Speed,
             seeds: int) -> NetworkSpec:
    pair = table.pair(row.pair)
    se = row.variant in ("se", "se_weighted")
    members = min(pair.independent_ensemble, profile.ensemble_size) if row.variant == "independent" else 1
    heads = {"se": pair.heads_per_tap, "se_weighted": pair.heads_per_tap, "dsn": 1}
    epochs, optimizer = profile.epochs_for(dataset, pair.name), table.preset_for(pair, preset)
    patience, snapshots = profile.patience, 0
    if row.variant == "snapshot":  # the epoch cap split into whole cycles; the schedule needs the run's length
        snapshots = table.snapshot_count(pair, profile)
        epochs, optimizer, patience = snapshots * (epochs // snapshots), replace(optimizer, cosine=True), None
    return NetworkSpec(
        backbone=pair.backbone, options=pair.options_for(dataset), inputs=pair.inputs,
        heads_per_tap=heads.get(row.variant),
        # DSN is trained on the same summed loss as SE
        tap_weights=dict(pair.tap_weights) if (se or row.variant == "dsn") and pair.tap_weights else None,
        optimizer=optimizer.config(), epochs=epochs,
        batch_size=table.batch_size,
        members=members,
        vote={"se_weighted": "accuracy_weighted", "dsn": "last_head"}.get(row.variant, "soft"),
        holdout=max(profile.holdout, pair.weighted_vote_holdout if row.variant == "se_weighted" else 0.0),
        patience=patience, stop_on=profile.stop_on,
        augment=table.augment, probe_gradients=table.probe_gradients,
        # a snapshot ensemble's cycles run one after another: nothing to batch
        speed=speed.config(members, BACKBONES[pair.backbone].batchable and not snapshots, seeds),
        snapshots=snapshots,
    )
