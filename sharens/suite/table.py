"""The vocabulary a benchmark module declares its table in.

A table is data sets x rows. Rows come from `Pair`s (a backbone trained as the
plain baseline, as SE, and optionally as an independent ensemble of K
baselines) and from scikit-learn `Classic` models; `Table.rows` enumerates
them once, for planning, reporting and listing alike. Every number of the
paper's table sits in `paper`, keyed by a row's label; a paper row that no
model here produces must be named in `cited` (shown, not re-run), so a typo in
a key is an error at import. Rows the paper itself quoted from other work are
marked with their source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from sharens.train.presets import FIT_ACCURACY, MIN_IMPROVEMENT, STOP_RULES, Preset, get_preset

SE_SUFFIX = "+SE"
BUDGET_HOLDOUT = 0.1  # share of train a budget rule holds out to choose the epochs on
ENSEMBLE_SUFFIX = " x{k} (independent)"
DSN_SUFFIX = " DSN"
SNAPSHOT_SUFFIX = " snapshots x{m}"
# what a row trains: the plain network, SE, SE voting with held-out accuracies, K plain networks, the
# deeply-supervised control (one head per tap, the same summed loss, predicting by its last head), a classic model
VARIANTS = ("baseline", "se", "se_weighted", "independent", "dsn", "snapshot", "classic")
CITED = "cited"  # a paper row that is shown, not re-run


@dataclass(frozen=True)
class Row:
    """One row of a table: which pair (or classic model) and which variant of it, and the label it prints."""

    pair: str | None  # the pair's name; None for classic and cited rows
    variant: str  # one of VARIANTS, or CITED
    label: str


@dataclass(frozen=True)
class Pair:
    """A backbone as baseline (`name`) and as sharing ensemble (`name+SE`).

    `options` go to the backbone factory for every data set, `dataset_options`
    add to them per data set (for example a width that depends on the input).
    `independent_ensemble` = K > 0 adds a row of K soft-voted baselines trained
    from different seeds, the costly alternative SE claims to replace.
    `weighted_vote_holdout` = f > 0 adds an SE row that holds out a fraction f of
    train and votes with weights = each head's accuracy there (the paper's
    suggestion for heads that differ a lot). `inputs` names the data set's input
    view the backbone reads (None: its default input, e.g. IMDB's token ids).
    `sweep` = (family, depth) places the pair on a depth sweep (Figure 2, the
    ResNet table), which the report plots as accuracy vs depth per family.
    `preset_changes` replace fields of every preset for this pair only (ResNet-110's warm-up).
    `deeply_supervised` (on unless a pair opts out) adds the DSN control row
    (`name DSN`): one head on every tap, trained on the same summed loss,
    predicting by its last head (its vote over the taps is reported beside it),
    which separates SE's supervision of the hidden layers from its voting; the
    claim "SE beats DSN" (`sharens.judge.claims`) is judged on it.
    `snapshot_ensemble` = M > 0 (on unless a pair opts out) adds a snapshot
    ensemble of the baseline (Huang et al. 2017): the epoch budget split into
    M cycles, each restarting the rate (and the optimizer) and annealing it by
    half a cosine, the M end-of-cycle snapshots soft-voted: an ensemble at the
    cost of one training run, for the claim "SE beats a snapshot ensemble".
    """

    name: str
    backbone: str
    options: Mapping = field(default_factory=dict)
    inputs: str | None = None
    dataset_options: Mapping[str, Mapping] = field(default_factory=dict)
    heads_per_tap: int = 5
    tap_weights: Mapping[str, float] | None = None
    independent_ensemble: int = 0
    weighted_vote_holdout: float = 0.0
    sweep: tuple[str, int] | None = None
    preset_changes: Mapping = field(default_factory=dict)
    deeply_supervised: bool = True
    snapshot_ensemble: int = 5

    def __post_init__(self):
        if not 0 <= self.weighted_vote_holdout < 1:
            raise ValueError(f"{self.name}: weighted_vote_holdout must be in [0, 1)")

    def options_for(self, dataset: str) -> dict:
        return {**self.options, **self.dataset_options.get(dataset, {})}

    @property
    def se_name(self) -> str:
        return self.name + SE_SUFFIX

    @property
    def weighted_name(self) -> str:
        return self.se_name + " (accuracy-weighted vote)"

    def ensemble_name(self, k: int) -> str:
        return self.name + ENSEMBLE_SUFFIX.format(k=k)

    def snapshot_name(self, m: int) -> str:
        return self.name + SNAPSHOT_SUFFIX.format(m=m)

    @property
    def dsn_name(self) -> str:
        return self.name + DSN_SUFFIX


@dataclass(frozen=True)
class Classic:
    """A scikit-learn model re-run on our split; `estimator` is a key of `sharens.model.classic`."""

    name: str
    estimator: str
    inputs: str | None = None  # the data set's input view (None: its default input)
    # its solver's cap where the estimator's (sharens.model.classic.MAX_ITER) stops it short
    max_iter: int | None = None


@dataclass(frozen=True)
class Profile:
    """How much of the work to do: data slices, epochs, seeds, ensemble size.

    `train_subset`/`test_subset` = None means the whole split. `pair_epochs`
    overrides the epochs of one pair (a slow model, such as an LSTM on CPU);
    `pairs`, when given, names the only pairs this profile trains (a CPU profile
    of a depth sweep keeps its ends).
    """

    name: str
    epochs: int | Mapping[str, int]  # one count, or one per data set
    seeds: int
    ensemble_size: int
    forest_trees: int
    train_subset: int | None = None
    test_subset: int | None = None
    description: str = ""
    pair_epochs: Mapping[str, int] = field(default_factory=dict)
    pairs: tuple[str, ...] | None = None
    # the budget rule: with `patience`, networks hold out a seeded `holdout` share of train, stop once its loss
    # has not improved for `patience` epochs (epochs are then a cap) and keep their best epoch's weights; with
    # `stop_on="train_loss"` they train on all of train until converged on it (see loop.train)
    patience: int | None = None
    holdout: float = 0.0
    stop_on: str = "heldout_loss"

    def runs(self, pair: str) -> bool:
        return self.pairs is None or pair in self.pairs

    def epochs_for(self, dataset: str, pair: str | None = None) -> int:
        if pair in self.pair_epochs:
            return self.pair_epochs[pair]
        return self.epochs if isinstance(self.epochs, int) else self.epochs[dataset]


@dataclass(frozen=True)
class ThroughputTolerance:
    """A table's cost claims (`sharens.judge.throughput`): SE's step at most 1 + its heads' FLOP share + `se_margin`
    of its baseline's (training and prediction); an independent ensemble of K at least K - `ensemble_margin`
    times SE's training step ("far less than an ensemble")."""

    se_margin: float = 0.10
    ensemble_margin: float = 1.5


@dataclass(frozen=True)
class Table:
    """One table of the paper: what to run, what the paper reported, how close counts."""

    id: str
    title: str
    datasets: tuple[str, ...]
    pairs: tuple[Pair, ...]
    profiles: Mapping[str, Profile]
    paper: Mapping[str, Mapping[str, float]]  # row -> data set -> accuracy (%)
    tolerance: float  # points of accuracy within which a row counts as reproduced
    batch_size: int = 128
    classic: tuple[Classic, ...] = ()
    quoted: Mapping[str, str] = field(default_factory=dict)  # paper row -> the work it quotes
    notes: tuple[str, ...] = ()
    # data set -> (train, test) rows of the paper's split; a run on other sizes is not compared with it
    paper_split: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    presets: tuple[str, ...] = ("tuned", "paper")  # what a run without --preset trains
    # this table's own meaning of a preset name (Figure 2's paper rate differs, the ResNets use SGD)
    preset_overrides: Mapping[str, Preset] = field(default_factory=dict)
    augment: str | None = None  # a key of sharens.train.augment.AUGMENTATIONS, applied to every training batch
    # measure the gradient norm that reaches the first layer, at initialisation and after training
    probe_gradients: bool = False
    question: str = ""  # what the table is for, stated at the top of its report
    cited: tuple[str, ...] = ()  # paper rows shown but not re-run (other methods, quoted results)
    throughput: ThroughputTolerance = ThroughputTolerance()  # what the cost claims allow
    run_order: int = 100  # tables are listed and run in this order: the cheapest first

    def __post_init__(self):
        object.__setattr__(self, "profiles", MappingProxyType(dict(self.profiles)))
        labels = {row.label for row in self.rows()}
        unknown = set(self.paper) - labels
        if unknown:
            raise ValueError(f"{self.id}: paper rows {sorted(unknown)} match no row of the table "
                             f"({sorted(labels)}); declare rows that are shown but not re-run in `cited`")
        if set(self.cited) - set(self.paper):
            raise ValueError(f"{self.id}: cited rows {sorted(set(self.cited) - set(self.paper))} have no paper number")
        if self.tolerance < 1.0:
            raise ValueError(f"{self.id}: tolerance must be at least 1 point")
        names = {pair.name for pair in self.pairs}
        for profile in self.profiles.values():
            if profile.pairs is not None and set(profile.pairs) - names:
                raise ValueError(f"{self.id}: profile {profile.name} names unknown pairs "
                                 f"{sorted(set(profile.pairs) - names)}")

    def rows(self, profile: Profile | None = None) -> list[Row]:
        """Every row, in report order: cited rows, classic models, then each pair's variants.

        With a profile: only the pairs it trains, and independent and snapshot ensembles of its size.
        """
        rows = [Row(None, CITED, name) for name in self.cited]
        rows += [Row(None, "classic", c.name) for c in self.classic]
        for pair in self.pairs:
            if profile is not None and not profile.runs(pair.name):
                continue
            rows += [Row(pair.name, "baseline", pair.name), Row(pair.name, "se", pair.se_name)]
            if pair.weighted_vote_holdout:
                rows.append(Row(pair.name, "se_weighted", pair.weighted_name))
            k = pair.independent_ensemble if profile is None else min(pair.independent_ensemble,
                                                                        profile.ensemble_size)
            if k:
                rows.append(Row(pair.name, "independent", pair.ensemble_name(k)))
            if pair.deeply_supervised:
                rows.append(Row(pair.name, "dsn", pair.dsn_name))
            m = self.snapshot_count(pair, profile)
            if m > 1:  # one snapshot is no ensemble
                rows.append(Row(pair.name, "snapshot", pair.snapshot_name(m)))
        return rows

    def snapshot_count(self, pair: Pair, profile: Profile | None = None) -> int:
        """M, the snapshots a pair's snapshot ensemble votes: the pair's, capped by the profile's ensemble size
        and by its epochs on every data set (a cycle is at least one epoch), so the row's label tells the truth."""
        if profile is None:
            return pair.snapshot_ensemble
        return min(pair.snapshot_ensemble, profile.ensemble_size,
                   *(profile.epochs_for(dataset, pair.name) for dataset in self.datasets))

    def pair(self, name: str) -> Pair:
        return next(p for p in self.pairs if p.name == name)

    def classic_model(self, name: str) -> Classic:
        return next(c for c in self.classic if c.name == name)

    def preset(self, name: str) -> Preset:
        return self.preset_overrides.get(name) or get_preset(name)

    def preset_for(self, pair: Pair, name: str) -> Preset:
        """The preset `name` as `pair` trains with it."""
        preset = self.preset(name)
        return replace(preset, **pair.preset_changes) if pair.preset_changes else preset

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise ValueError(f"{self.id} has no profile {name!r}; choose one of {sorted(self.profiles)}")
        return self.profiles[name]


def standard_profiles(*, full_epochs: int | Mapping[str, int], quick_epochs: int | Mapping[str, int],
                      smoke_train: int = 512, smoke_test: int = 256,
                      full_pair_epochs: Mapping[str, int] | None = None,
                      quick_pair_epochs: Mapping[str, int] | None = None,
                      quick_subset: tuple[int, int] | None = None, quick_seeds: int = 3,
                      smoke_pairs: tuple[str, ...] | None = None,
                      quick_pairs: tuple[str, ...] | None = None,
                      full_epochs_why: str = "the paper gives no epoch count",
                      full_patience: int | None = None, full_stop_on: str = "heldout_loss",
                      full_stop_why: str = "") -> dict[str, Profile]:
    """The three profiles every table offers; a table chooses its epochs (per data set or pair),
    may make `quick` use fixed random (train, test) subsets of a large data set and fewer seeds,
    and may restrict `smoke` and `quick` to some of its pairs. `full_patience` sets `full`'s budget
    rule: epochs chosen on a held-out slice of train, or (`full_stop_on="train_loss"`, saying
    `full_stop_why`) training until converged on train itself."""
    if full_stop_on not in STOP_RULES:
        raise ValueError(f"full_stop_on must be one of {STOP_RULES}")
    heldout_rule = full_patience is not None and full_stop_on == "heldout_loss"
    def per_pair(epochs):
        return f", except {dict(epochs)}" if epochs else ""

    def only(pairs):
        return f"; only {', '.join(pairs)}" if pairs else ""

    return {
        "smoke": Profile(
            "smoke", epochs=2, seeds=2, ensemble_size=2, forest_trees=20,
            train_subset=smoke_train, test_subset=smoke_test, pairs=smoke_pairs,
            description=f"CI check: {smoke_train} train / {smoke_test} test rows of the real data, "
                        "2 epochs, 2 seeds, independent ensembles of 2, forests of 20 trees" + only(smoke_pairs),
        ),
        "quick": Profile(
            "quick", epochs=quick_epochs, seeds=quick_seeds, ensemble_size=5, forest_trees=100,
            pair_epochs=quick_pair_epochs or {}, pairs=quick_pairs,
            train_subset=quick_subset[0] if quick_subset else None,
            test_subset=quick_subset[1] if quick_subset else None,
            description=(f"{quick_subset[0]:,} train / {quick_subset[1]:,} test rows (fixed random subsets)"
                         if quick_subset else "the paper's data")
                        + f", epochs {quick_epochs}{per_pair(quick_pair_epochs)}, "
                        f"{quick_seeds} seed{'s' if quick_seeds != 1 else ''}, "
                        "forests of 100 trees" + only(quick_pairs),
        ),
        "full": Profile(
            "full", epochs=full_epochs, seeds=5, ensemble_size=5, forest_trees=500,
            pair_epochs=full_pair_epochs or {}, patience=full_patience, stop_on=full_stop_on,
            holdout=BUDGET_HOLDOUT if heldout_rule else 0.0,
            description="the paper's data and splits, "
                        + (_budget_rule(full_patience, full_stop_on, full_stop_why)
                           + f", at most {full_epochs}{per_pair(full_pair_epochs)} epochs" if full_patience
                           else f"epochs {full_epochs}{per_pair(full_pair_epochs)} ({full_epochs_why})")
                        + ", 5 seeds, forests of 500 trees",
        ),
    }


def _budget_rule(patience: int, stop_on: str, why: str) -> str:
    if stop_on == "heldout_loss":
        return (f"networks train on {1 - BUDGET_HOLDOUT:.0%} of train and stop once the loss on the held-out "
                f"{BUDGET_HOLDOUT:.0%} has not improved for {patience} epochs (keeping the best epoch's weights)")
    return (f"networks train on all of train until converged on it: they stop once the vote gets "
            f"{FIT_ACCURACY:g}% of the training rows right or the training loss has not fallen by "
            f"{MIN_IMPROVEMENT:.0%} for {patience} epochs" + (f" ({why})" if why else ""))
