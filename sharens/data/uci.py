"""Readers for the UCI tables LETTER, ADULT and YEAST.

Each reader takes {relpath: verified path} (and the cache dir, unused here) and
returns the split as a dict of x_train, y_train, x_test, y_test (float32 /
int64), classes and info. All
statistics (means, stds, one-hot categories) come from the training rows only,
so nothing about the test set leaks into the inputs.
"""

from __future__ import annotations

import csv
import string
from pathlib import Path

import numpy as np

from sharens.data.splits import split_result, standardize, stratified_split


def read_letter(paths: dict[str, Path], cache: Path | None = None) -> dict:
    """LETTER: the customary split, first 16,000 rows train, last 4,000 test; 16 integer features."""
    rows = np.loadtxt(paths["uci/letter-recognition.data"], delimiter=",", dtype=str)
    classes = tuple(string.ascii_uppercase)
    y = np.searchsorted(np.array(classes), rows[:, 0])
    x = rows[:, 1:].astype(np.float64)
    x_train, x_test = standardize(x[:16000], x[16000:])
    info = {"split": {"rule": "file order: first 16,000 rows train, last 4,000 test (Frey & Slate 1991)"},
            "preprocessing": "label = first column letter A..Z; 16 integer features standardized "
                             "with train mean/std"}
    return split_result(x_train, y[:16000], x_test, y[16000:], classes, info)


ADULT_COLUMNS = ("age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
                 "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
                 "hours-per-week", "native-country")
ADULT_NUMERIC = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")
ADULT_CLASSES = ("<=50K", ">50K")


def _adult_rows(path: Path) -> np.ndarray:
    """Fields of the non-blank data rows as a string array (skips adult.test's `|1x3 Cross validator`)."""
    with open(path, newline="") as f:
        rows = [[v.strip() for v in row] for row in csv.reader(f)
                if row and not row[0].startswith("|") and any(v.strip() for v in row)]
    array = np.array(rows, dtype=str)
    if array.ndim != 2 or array.shape[1] != len(ADULT_COLUMNS) + 1:
        raise ValueError(f"{path}: expected {len(ADULT_COLUMNS) + 1} comma-separated fields per row")
    return array


def _one_hot(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """One-hot with the train categories; a category seen only in test gives an all-zero row."""
    cats = np.unique(train)

    def encode(col: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(cats, col)
        known = cats[np.minimum(idx, len(cats) - 1)] == col
        return ((idx[:, None] == np.arange(len(cats))) & known[:, None]).astype(np.float32)

    return encode(train), encode(test), len(cats)


def read_adult(paths: dict[str, Path], cache: Path | None = None) -> dict:
    """ADULT: official adult.data / adult.test split; numeric columns standardized, categorical one-hot."""
    train, test = _adult_rows(paths["uci/adult.data"]), _adult_rows(paths["uci/adult.test"])
    labels = [np.char.rstrip(part[:, -1], ".") for part in (train, test)]  # adult.test writes ">50K."
    for found in labels:
        if not np.isin(found, ADULT_CLASSES).all():
            raise ValueError(f"ADULT: unexpected labels {sorted(set(found) - set(ADULT_CLASSES))}")
    y_train, y_test = [(found == ">50K").astype(np.int64) for found in labels]

    num = [ADULT_COLUMNS.index(c) for c in ADULT_NUMERIC]
    x_train, x_test = standardize(train[:, num].astype(np.float64), test[:, num].astype(np.float64))
    parts_train, parts_test = [x_train], [x_test]
    categories, unseen = {}, {}
    for j, column in enumerate(ADULT_COLUMNS):
        if column in ADULT_NUMERIC:
            continue
        a, b, n = _one_hot(train[:, j], test[:, j])
        parts_train.append(a)
        parts_test.append(b)
        categories[column] = n
        unseen[column] = int((b.sum(axis=1) == 0).sum())

    missing = {column: [int((part[:, j] == "?").sum()) for part in (train, test)]
               for j, column in enumerate(ADULT_COLUMNS)}
    info = {
        "split": {"rule": "official: adult.data train, adult.test test"},
        "preprocessing": "fields stripped, blank lines and adult.test's first line skipped, trailing '.' "
                         "of test labels removed; numeric columns standardized with train mean/std; "
                         "categorical columns one-hot over train categories (unseen test category -> "
                         "all zeros); '?' (missing) kept as its own category",
        "numeric_columns": list(ADULT_NUMERIC),
        "categories_per_column": categories,
        "test_rows_with_unseen_category": unseen,
        "missing": {
            "train_rows_with_missing": int((train == "?").any(axis=1).sum()),
            "test_rows_with_missing": int((test == "?").any(axis=1).sum()),
            "per_column_train_test": {c: m for c, m in missing.items() if any(m)},
        },
    }
    return split_result(np.hstack(parts_train), y_train, np.hstack(parts_test), y_test, ADULT_CLASSES, info)


YEAST_TEST_SIZE = 446


def read_yeast(paths: dict[str, Path], cache: Path | None = None) -> dict:
    """YEAST: 8 numeric features (sequence name dropped), 10 classes; fixed stratified 1,038 / 446 split."""
    rows = np.loadtxt(paths["uci/yeast.data"], dtype=str)
    classes, y = np.unique(rows[:, -1], return_inverse=True)
    x = rows[:, 1:-1].astype(np.float64)
    train, test, split = stratified_split(y, YEAST_TEST_SIZE)
    x_train, x_test = standardize(x[train], x[test])
    info = {"split": split,
            "preprocessing": "sequence name dropped; 8 features standardized with train mean/std; "
                             "classes sorted by name"}
    return split_result(x_train, y[train], x_test, y[test], tuple(str(c) for c in classes), info)
