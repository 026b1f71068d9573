"""What every reader shares: the fixed stratified split, train-only standardization, the result dict."""

from __future__ import annotations

import hashlib

import numpy as np
from sklearn.model_selection import train_test_split

SPLIT_SEED = 0


def standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale every column by the train mean/std (a constant column keeps std 1); float32."""
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[std == 0] = 1.0
    return ((train - mean) / std).astype(np.float32), ((test - mean) / std).astype(np.float32)


def stratified_split(y: np.ndarray, test_size: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fixed stratified split: (train rows, test rows, info), rows kept in file order."""
    train, test = train_test_split(np.arange(len(y)), test_size=test_size, stratify=y, random_state=SPLIT_SEED)
    train, test = np.sort(train), np.sort(test)
    info = {
        "rule": f"sklearn.model_selection.train_test_split(rows, test_size={test_size}, stratify=y, "
                f"random_state={SPLIT_SEED}); rows of each part kept in file order",
        "seed": SPLIT_SEED,
        # lets a report prove two machines used the same test rows (sklearn could change its shuffling)
        "test_rows_sha256": hashlib.sha256(test.astype(np.int64).tobytes()).hexdigest(),
    }
    return train, test, info


def counts(y: np.ndarray, classes: tuple[str, ...]) -> dict[str, int]:
    return {c: int(n) for c, n in zip(classes, np.bincount(y, minlength=len(classes)), strict=True)}


def split_result(x_train, y_train, x_test, y_test, classes, info) -> dict:
    info = {**info, "n_features": int(x_train.shape[1]), "n_train": len(y_train), "n_test": len(y_test),
            "train_class_counts": counts(y_train, classes), "test_class_counts": counts(y_test, classes)}
    return dict(x_train=x_train, y_train=y_train.astype(np.int64), x_test=x_test,
                y_test=y_test.astype(np.int64), classes=tuple(classes), info=info)
