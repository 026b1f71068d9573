"""Reader for UCI sEMG for Basic Hand movements, Database 1 (Sapsanis et al. 2013).

Every (subject, channel, trial) recording of 3,000 samples is one row, labelled
with its gesture: 5 subjects x 6 gestures x 2 channels x 30 trials = 1,800 rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from sharens.data.uci import split_result, standardize, stratified_split

SUBJECTS = ("female_1", "female_2", "female_3", "male_1", "male_2")
GESTURES = ("cyl", "hook", "tip", "palm", "spher", "lat")
CHANNELS = ("ch1", "ch2")
TRIALS, SAMPLES = 30, 3000
TEST_SIZE = 360


def read_semg(paths: dict[str, Path], cache: Path | None = None) -> dict:
    """Rows ordered subject, gesture, channel, trial; fixed stratified 1,440 / 360 split."""
    signals = []
    for subject in SUBJECTS:
        mat = scipy.io.loadmat(paths[f"semg/{subject}.mat"])
        for gesture in GESTURES:
            for channel in CHANNELS:
                block = mat[f"{gesture}_{channel}"]
                if block.shape != (TRIALS, SAMPLES):
                    raise ValueError(f"{subject}.mat {gesture}_{channel}: shape {block.shape}, "
                                     f"expected {(TRIALS, SAMPLES)}")
                signals.append(block)
    x = np.concatenate(signals)
    y = np.repeat(np.arange(len(GESTURES)), len(CHANNELS) * TRIALS)
    y = np.tile(y, len(SUBJECTS))
    train, test, split = stratified_split(y, TEST_SIZE)
    x_train, x_test = standardize(x[train], x[test])
    info = {"split": {**split, "stratified_by": "gesture only (subjects and channels are mixed across parts)"},
            "preprocessing": f"each {SAMPLES}-sample recording of one channel is a row (models may view it "
                             f"as 6x500); row order subject {SUBJECTS}, gesture, channel, trial; every "
                             "column standardized with train mean/std"}
    return split_result(x_train, y[train], x_test, y[test], GESTURES, info)
