"""Data sets of the suite: verified official files in, standardized train/test arrays out.

The derived arrays are cached as .npz in the cache dir, keyed by the source
files' sha256 and READER_VERSION, so a change of either rebuilds them; the data
root itself is only ever read.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sharens.data import files
from sharens.data.files import DataError, cache_dir, data_root
from sharens.data.semg import read_semg
from sharens.data.uci import read_adult, read_letter, read_yeast

__all__ = ["DATASETS", "DataError", "Dataset", "cache_dir", "data_root", "load_dataset"]

DATASETS: tuple[str, ...] = ("letter", "adult", "yeast", "semg")
READER_VERSION = 1  # bump when a reader's output changes, to invalidate old caches

_READERS = {"letter": read_letter, "adult": read_adult, "yeast": read_yeast, "semg": read_semg}
_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous; compare fields explicitly
class Dataset:
    name: str
    x_train: np.ndarray  # float32, standardized with train statistics only
    y_train: np.ndarray  # int64, 0..n_classes-1
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    info: dict  # JSON-serializable provenance: files, split, preprocessing, n_features


def _cache_key(name: str) -> str:
    sources = sorted((rel, files.MANIFEST[rel].sha256) for rel in files.DATASET_FILES[name])
    blob = json.dumps({"sources": sources, "reader_version": READER_VERSION})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _read_cache(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in _ARRAYS}
            out["classes"] = tuple(str(c) for c in z["classes"])
            out["info"] = json.loads(str(z["info"]))
    except Exception:  # any unreadable cache (truncated, foreign, old layout) is simply rebuilt
        return None
    if len(out["x_train"]) != len(out["y_train"]) or len(out["x_test"]) != len(out["y_test"]):
        return None
    return out


def _write_cache(path: Path, result: dict) -> None:
    """Atomic: readers in other processes see the old file or the complete new one."""
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz",
                                         delete=False) as f:
            np.savez(f, **{k: result[k] for k in _ARRAYS}, classes=np.array(result["classes"]),
                     info=np.array(json.dumps(result["info"], sort_keys=True)))
        os.chmod(f.name, 0o644)  # temp files are private; a cache may be shared
        os.replace(f.name, path)
    except OSError as exc:
        warnings.warn(f"could not cache {path}: {exc}", stacklevel=3)
        Path(f.name).unlink(missing_ok=True)


def load_dataset(name: str, root: str | os.PathLike | None = None,
                 cache: str | os.PathLike | None = None) -> Dataset:
    """Verified, split and standardized `name`; built once, then read from the cache."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    root, cache = data_root(root), cache_dir(cache)
    paths = {rel: files.verify(rel, root, cache) for rel in files.DATASET_FILES[name]}
    key = _cache_key(name)
    path = cache / f"{name}-{key}.npz"
    result = _read_cache(path)
    if result is None:
        result = _READERS[name](paths)
        result["info"] = {
            "dataset": name,
            "files": {rel: {"sha256": files.MANIFEST[rel].sha256, "url": files.MANIFEST[rel].url}
                      for rel in paths},
            "reader_version": READER_VERSION,
            "cache_key": key,
            **result["info"],
        }
        result["info"] = json.loads(json.dumps(result["info"]))  # fail here, not in a report, if not JSON
        _write_cache(path, result)
    return Dataset(name, *(result[k] for k in _ARRAYS), result["classes"], result["info"])
