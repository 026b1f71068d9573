"""A data set's sizes and input shapes, known without reading its arrays: all a plan's cost estimate needs.

`data_shape` answers from, in order: `shapes.json` in this package (the shared data files' shapes, so that a
fresh machine with an empty cache plans in seconds), a small JSON the data set left beside its cached arrays,
or, failing both, the data set itself (loaded once, which leaves that JSON). The first two are trusted only for
the files they were made from (their cache key); a data set whose files are missing takes the packaged entry of
its name, since a download brings the official files. `python -m sharens.data.shapes` rewrites the packaged
file from the data sets under the data root.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sharens.atomic import write_json

PACKAGED = Path(__file__).with_name("shapes.json")
DEFAULT_VIEW = ""  # the key of a data set's default input (view None) in the JSON


@dataclass(frozen=True)
class DataShape:
    """Rows, classes and each input view's row shape and dtype of a data set (or of a slice of it)."""

    n_train: int
    n_test: int
    num_classes: int
    inputs: dict[str | None, tuple[tuple[int, ...], str]]  # view -> (shape of one row, numpy dtype name)

    def sliced(self, train_subset: int | None, test_subset: int | None) -> DataShape:
        """The shape of the fixed slices a spec cuts (`sharens.execution.executors.prepare`)."""
        return DataShape(min(self.n_train, train_subset or self.n_train), min(self.n_test, test_subset or self.n_test),
                         self.num_classes, self.inputs)

    def example(self, view: str | None, rows: int = 2) -> np.ndarray:
        """Zeros shaped like `rows` rows of a view: enough to build a model and count its FLOPs."""
        shape, dtype = self.inputs[view]
        return np.zeros((rows, *shape), dtype=dtype)

    def to_json(self, cache_key: str) -> dict:
        return {"cache_key": cache_key, "n_train": self.n_train, "n_test": self.n_test, "classes": self.num_classes,
                "inputs": {DEFAULT_VIEW if v is None else v: [list(s), d] for v, (s, d) in self.inputs.items()}}

    @classmethod
    def from_json(cls, entry: dict) -> DataShape:
        return cls(entry["n_train"], entry["n_test"], entry["classes"],
                   {None if v == DEFAULT_VIEW else v: (tuple(s), d) for v, (s, d) in entry["inputs"].items()})

    @classmethod
    def of(cls, dataset) -> DataShape:
        """The shape of a loaded `sharens.data.Dataset`."""
        views = {None: dataset.inputs(), **dataset.views}
        return cls(len(dataset.y_train), len(dataset.y_test), len(dataset.classes),
                   {v: (tuple(train.shape[1:]), train.dtype.name) for v, (train, _) in views.items()})


def packaged() -> dict[str, dict]:
    return json.loads(PACKAGED.read_text()) if PACKAGED.is_file() else {}


def sidecar(cache: Path, name: str, key: str) -> Path:
    return cache / f"{name}-{key}.shape.json"


def data_shape(name: str, root: str | os.PathLike | None = None, missing_ok: bool = False) -> DataShape:
    """`name`'s shape (see the module's docstring); with `missing_ok`, the packaged one when its files are absent."""
    from sharens.data import DataMissing, cache_dir, cache_key, identify, load_dataset

    entry = packaged().get(name)
    try:
        key = cache_key(identify(name, root))
    except DataMissing:
        if not (missing_ok and entry is not None):
            raise
        return DataShape.from_json(entry)
    if entry is not None and entry["cache_key"] == key:
        return DataShape.from_json(entry)
    path = sidecar(cache_dir(), name, key)
    try:
        return DataShape.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError):
        shape = DataShape.of(load_dataset(name, root))
        write_json(path, shape.to_json(key))
        return shape


def write_packaged(root: str | os.PathLike | None = None) -> dict[str, dict]:
    """Rewrite `shapes.json` from every data set whose files are under the data root."""
    from sharens.data import DATASETS, DataMissing, cache_key, identify, load_dataset

    entries = {}
    for name in DATASETS:
        try:
            key = cache_key(identify(name, root))
        except DataMissing:
            continue
        entries[name] = DataShape.of(load_dataset(name, root)).to_json(key)
    write_json(PACKAGED, entries)
    return entries


if __name__ == "__main__":
    print(json.dumps(write_packaged(), indent=1))
