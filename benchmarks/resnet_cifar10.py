"""He et al. 2016, Table 6 (CIFAR-10): ResNets and plain nets of depth 6n+2, each with an SE variant.

The question: do SE heads cure the degradation of deep plain nets (plain-56
worse than plain-20), and how close do they get to the residual nets? SE puts 5
heads on the middle and the last block of every stage (taps s1b*, s2b*, s3b*
and the pooled output, each read through global average pooling), so the
baseline is exactly He et al.'s network. The paper's test errors are shown as
accuracy = 100 - error.
"""

from sharens.suite.table import Pair, Table, standard_profiles
from sharens.train.presets import Preset

HE2016 = "[He et al. 2016]"
DEPTHS = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18}  # depth 6n+2 -> n
PAPER_ERROR = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}  # % test error (110: best of 5 runs)
WARMUP = {"warmup_steps": 400, "warmup_lr": 0.01}  # He et al.: ResNet-110 starts at 0.01 for ~400 iterations


def net(depth: int, residual: bool) -> Pair:
    family = "ResNet" if residual else "plain"
    return Pair(f"{family}-{depth}", "cifar_resnet", options={"n": DEPTHS[depth], "residual": residual},
                sweep=(family, depth), preset_changes=WARMUP if depth == 110 else {},
                deeply_supervised=False, snapshot_ensemble=0)  # a GPU lease's budget goes to He et al.'s rows


TABLE = Table(
    id="resnet_cifar10",
    run_order=7,
    title="He et al. 2016, Table 6: CIFAR-10 ResNets and plain nets, with SE heads, test accuracy (%)",
    datasets=("cifar10",),
    pairs=tuple(net(d, residual) for residual in (False, True) for d in DEPTHS),
    paper={
        **{f"ResNet-{d}": {"cifar10": round(100 - e, 2)} for d, e in PAPER_ERROR.items()},
        "Maxout": {"cifar10": 100 - 9.38}, "NIN": {"cifar10": 100 - 8.81}, "DSN": {"cifar10": 100 - 8.22},
        "FitNet": {"cifar10": 100 - 8.39}, "Highway": {"cifar10": 100 - 7.54},
    },
    cited=("Maxout", "NIN", "DSN", "FitNet", "Highway"),
    quoted={m: HE2016 for m in ("Maxout", "NIN", "DSN", "FitNet", "Highway")},
    tolerance=1.0,
    paper_split={"cifar10": (50_000, 10_000)},
    batch_size=128,
    augment="crop_flip",
    question="do SE heads cure the degradation of deep plain nets (plain-56 below plain-20), and how close "
             "do they get to the residual nets? Read the change from the shallowest to the deepest net per line "
             "of the depth table, and the SE rows beside the ResNet rows.",
    presets=("he2016",),
    preset_overrides={"he2016": Preset(
        "he2016", 0.1, 0.001, "He et al.'s CIFAR recipe (batch 128; 64k iterations at `full`)",
        optimizer="sgd", momentum=0.9, weight_decay=1e-4, milestones=(0.5, 0.75))},
    profiles=standard_profiles(
        full_epochs=164, quick_epochs=4, smoke_train=256, smoke_test=256,
        smoke_pairs=("plain-20", "ResNet-20"), quick_subset=(5_000, 2_000), quick_seeds=1,
        quick_pairs=("plain-20", "plain-56", "ResNet-20", "ResNet-56"),
        full_epochs_why="He et al.'s 64k iterations of 128 images"),
    notes=(
        "He et al. train on 45k images and validate on 5k; we train on all 50,000 (the split the SE paper "
        "uses) for 164 epochs = 64k iterations of 128, lr / 10 at 50% and 75% of the run (32k, 48k).",
        "Pixels scaled to [0, 1] and centred on the training set's per-pixel mean, inside the model; "
        "augmentation pads with zeros before centring.",
        "Paper parameter counts: ResNet-20 0.27M, -32 0.46M, -44 0.66M, -56 0.85M, -110 1.7M (the Params "
        "column is ours, baseline heads included).",
        "Plain nets: He et al. show them only in a figure (plain-56 worse than plain-20), so they have no "
        "paper number.",
    ),
)
