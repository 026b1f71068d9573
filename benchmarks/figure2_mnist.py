"""Figure 2 of the SE paper: plain vs SE tanh CNNs on MNIST as depth grows (the vanishing-gradient claim).

Every layer is a 3x3x64 "same" convolution, stride 1, no pooling, no batch
norm, tanh. The plain net has one head after its last layer; the SE net has 5
heads after every second layer, all voting. The paper shows only a figure (no
numbers): its claim is that the plain net's accuracy collapses with depth while
SE's holds. Each run also measures the gradient norm reaching the first layer.

Two controls separate SE's effect from what else could explain the curves: the
plain net with Xavier initialisation and the tanh gain (is the plain net's
collapse an artifact of PyTorch's default init?), and the deeply-supervised
net (DSN: one head per tap, the same summed loss, predicting by its last head;
is it the supervision of the hidden layers or the vote?).
"""

from sharens.suite.table import Pair, Table, standard_profiles
from sharens.train.presets import Preset

DEPTHS = tuple(range(2, 21, 2))
FAMILY = "tanh CNN"
XAVIER = "tanh CNN (Xavier)"


def tanh_cnn(depth: int, family: str = FAMILY) -> Pair:
    init = {"init": "xavier_tanh"} if family == XAVIER else {}
    return Pair(f"{family}-{depth}", "convnet",
                options={"dims": 2, "layers": ((64, 1),) * depth, "activation": "tanh", "batch_norm": False, **init},
                sweep=(family, depth), deeply_supervised=family == FAMILY, snapshot_ensemble=0)


def _names(*depths: int) -> tuple[str, ...]:
    return tuple(f"{family}-{d}" for family in (FAMILY, XAVIER) for d in depths)


TABLE = Table(
    id="figure2_mnist",
    run_order=6,
    title="Figure 2: plain vs sharing-ensemble tanh CNNs on MNIST by depth, test accuracy (%)",
    datasets=("mnist",),
    pairs=tuple(tanh_cnn(d, family) for family in (FAMILY, XAVIER) for d in DEPTHS),
    paper={},  # a figure without numbers: the claim is the shape of the curves
    tolerance=1.0,
    batch_size=100,
    preset_overrides={"paper": Preset(
        "paper", 0.1, 1e-3, "Figure 2's setting as printed (Adam, lr 0.1 -> 0.001, exponential decay)")},
    probe_gradients=True,
    question="does the plain tanh CNN's accuracy collapse as it gets deeper while the SE CNN's holds, and does "
             "more gradient reach the first layer of the SE net (the paper's vanishing-gradient argument)?",
    profiles=standard_profiles(
        full_epochs=20, full_patience=3, quick_epochs=2, smoke_train=256, smoke_test=256, smoke_pairs=_names(2, 4),
        quick_subset=(1_500, 2_000), quick_seeds=1, quick_pairs=_names(2, 8, 14, 20)),
    notes=(
        "Pixels scaled to [0, 1] and centred on the training set's per-pixel mean, inside the model.",
        "The paper gives neither the epochs nor the deepest net: depths 2-20; at `full` epochs are chosen on a "
        "held-out tenth of train (at most 20).",
        "Controls: the plain net with Xavier init and the tanh gain (`tanh CNN (Xavier)`), and the deeply-"
        "supervised net (`DSN`: one head per tap, the same summed loss, predicting by its last head).",
    ),
)
