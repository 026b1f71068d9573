"""Table 5 of the SE paper: sEMG hand-gesture recognition (6 classes, test accuracy %)."""

from sharens.suite.table import Classic, Pair, Table, standard_profiles

GCFOREST = "[38]"  # the gcForest paper (Zhou & Feng 2017), quoted by the SE paper

TABLE = Table(
    id="table5_semg",
    run_order=2,
    title="Table 5: sEMG basic hand movements, test accuracy (%)",
    datasets=("semg",),
    pairs=(
        # 8 FC layers 512 ... 45 (sqrt(2) pyramid) on the 3,000 raw samples; taps every 2 layers.
        Pair("DNN", "pyramid_dnn", options={"first_width": 512, "depth": 8, "tap_every": 2},
             independent_ensemble=5, weighted_vote_holdout=0.1),
        # Each row as 6 steps x 500 samples; 4 LSTM layers of 128; a tap after each layer.
        Pair("Deep LSTM", "deep_lstm", options={"steps": 6, "hidden": 128, "layers": 4},
             independent_ensemble=5),
    ),
    classic=(
        Classic("Random Forest", "random_forest"),
        Classic("SVM (rbf)", "svm_rbf"),
        Classic("Logistic Regression", "logistic_regression"),
    ),
    paper={
        "gcForest": {"semg": 71.30},
        "Random Forest": {"semg": 29.62},
        "SVM (rbf)": {"semg": 29.62},
        "Logistic Regression": {"semg": 23.33},
        "DNN": {"semg": 42.23},
        "DNN+SE": {"semg": 44.52},
        "Deep LSTM": {"semg": 47.33},
        "Deep LSTM+SE": {"semg": 48.00},
    },
    cited=("gcForest",),
    quoted={m: GCFOREST for m in ("gcForest", "Random Forest", "SVM (rbf)", "Logistic Regression")},
    # 360 test rows (one sample = 0.28 points) and a small, noisy training set: 2 points.
    tolerance=2.0,
    paper_split={"semg": (1440, 360)},
    batch_size=64,
    # A held-out tenth (144 rows) cannot choose the epochs here: under that rule (commit 593931f) the held-out
    # loss was lowest after epoch 1 or 2 (20 steps each; training accuracy 20-55%) in 18 of the 20 tuned
    # DNN, DNN+SE, LSTM and LSTM+SE cells, so the rule measured itself. The networks train to convergence on
    # train instead, as the paper's fixed budget would.
    profiles=standard_profiles(full_epochs=100, full_patience=10, quick_epochs=10, smoke_train=256,
                               smoke_test=120, full_stop_on="train_loss",
                               full_stop_why="a held-out slice of 144 rows is too small to choose epochs on"),
    notes=(
        "Rows are the 1,800 single-channel trials (5 subjects x 6 gestures x 30 trials x 2 "
        "channels), as in the gcForest protocol; the label is the gesture.",
    ),
)
