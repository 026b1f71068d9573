"""Table 6 of the SE paper: IMDB sentiment (2 classes, 25,000 / 25,000 reviews, test accuracy %).

The DNN reads the gcForest protocol's input, 5,000 tf-idf terms (the `tfidf`
view); the CNN and the LSTM read 500 token ids through a learned 100-d
embedding. The paper's 93.34% for a plain LSTM is far above what plain LSTMs
usually reach on IMDB; we report what we measure.
"""

from sharens.data.imdb import VOCAB_SIZE
from sharens.suite.table import Classic, Pair, Table, standard_profiles

GCFOREST = "[38]"  # the gcForest paper (Zhou & Feng 2017), quoted by the SE paper
TOKENS = {"vocab_size": VOCAB_SIZE, "embed_dim": 100}

TABLE = Table(
    id="table6_imdb",
    run_order=3,
    title="Table 6: IMDB movie-review sentiment, test accuracy (%)",
    datasets=("imdb",),
    pairs=(
        # 8 FC layers 512 ... 45 (sqrt(2) pyramid) on tf-idf; taps every 2 layers.
        Pair("DNN", "pyramid_dnn", options={"first_width": 512, "depth": 8, "tap_every": 2},
             inputs="tfidf", independent_ensemble=5),
        # 1-D convolutions over the 500 embedded tokens, kernel 3, stride 2 every second layer
        # (500 -> 250 -> 125 -> 63 positions); taps after L2, L4, L6.
        Pair("Deep CNN", "convnet", options={
            **TOKENS, "dims": 1, "layers": ((32, 1), (32, 2), (64, 1), (64, 2), (128, 1), (128, 2))}),
        # 3 stacked LSTMs of 64 over the embedded tokens; a tap (final state) after each layer.
        Pair("Deep LSTM", "deep_lstm", options={**TOKENS, "hidden": 64, "layers": 3, "readout": "last"}),
    ),
    classic=(
        Classic("Logistic Regression", "logistic_regression", inputs="tfidf"),
        Classic("SVM (linear)", "svm_linear", inputs="tfidf"),
        Classic("Random Forest", "random_forest", inputs="tfidf"),
    ),
    paper={
        "gcForest": {"imdb": 89.16},
        "Logistic Regression": {"imdb": 88.62},
        "SVM (linear)": {"imdb": 87.56},
        "Random Forest": {"imdb": 85.32},
        "DNN": {"imdb": 88.23},
        "DNN+SE": {"imdb": 89.56},
        "Deep CNN": {"imdb": 91.35},
        "Deep CNN+SE": {"imdb": 92.00},
        "Deep LSTM": {"imdb": 93.34},
        "Deep LSTM+SE": {"imdb": 93.78},
    },
    cited=("gcForest",),
    quoted={m: GCFOREST for m in ("gcForest", "Logistic Regression", "SVM (linear)", "Random Forest")},
    # 25,000 test reviews make sampling noise small (0.3 points); 1.5 points leaves room for
    # the unstated tokenization and training length.
    tolerance=1.5,
    paper_split={"imdb": (25000, 25000)},
    batch_size=128,
    # The CPU budget goes to the tuned preset; `--preset paper` (Adam at 0.5) runs too.
    presets=("tuned",),
    # `full`: epochs chosen on a held-out tenth of train, at most 10 (the LSTM too, about 5 minutes an epoch on
    # one core: at a cap of 6 its held-out loss was still falling at the cap in one seed of two; its cells resume
    # across sittings from their checkpoints); `quick` keeps the CPU budget of one LSTM epoch, which its rows
    # report as under-trained.
    profiles=standard_profiles(full_epochs=10, full_patience=2, quick_epochs=2, smoke_train=256, smoke_test=256,
                               quick_pair_epochs={"Deep LSTM": 1},
                               quick_subset=(10_000, 10_000)),
    notes=(
        "DNN input: sklearn tf-idf over the 5,000 most frequent train terms (the gcForest protocol); "
        "CNN and LSTM input: 500 token ids, 100-d embedding learned with the model.",
        "The paper does not state its tokenizer, vocabulary or epochs; ours are in the data notes "
        "and the profile.",
        "Independent ensembles (5 baselines from 5 seeds) are trained for the DNN only: for the CNN and the "
        "LSTM they would cost five times their pairs' CPU time (about 2.7 h for the CNN at `full`); the DNN row "
        "measures what SE saves against such an ensemble.",
        "The paper's plain-LSTM 93.34% is far above what plain LSTMs trained from scratch usually reach "
        "on IMDB (high 80s); the paper states no trick (pre-trained vectors, bidirectional layers) that "
        "would explain it, so we run none and report what we measure.",
    ),
)
