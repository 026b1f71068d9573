"""Data sets of the suite: verified official files in, standardized train/test arrays out.

The derived arrays are cached as .npz in the cache dir, keyed by the source
files' sha256 and READER_VERSION, so a change of either rebuilds them; the data
root itself is only ever read.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sharens.data import cifar10, files, gtzan, imdb, mnist
from sharens.data.files import DataError, cache_dir, data_root
from sharens.data.semg import read_semg
from sharens.data.uci import read_adult, read_letter, read_yeast

__all__ = ["DATASETS", "DataError", "Dataset", "cache_dir", "data_root", "download", "load_dataset"]

DATASETS: tuple[str, ...] = ("letter", "adult", "yeast", "semg", "imdb", "gtzan", "mnist", "cifar10")
READER_VERSION = 3  # bump when a reader's output changes, to invalidate old caches

# reader(paths, cache) -> dict; `cache` is where a reader may keep per-file work (GTZAN's clip features)
_READERS = {"letter": read_letter, "adult": read_adult, "yeast": read_yeast, "semg": read_semg,
            "imdb": imdb.read_imdb, "gtzan": gtzan.read_gtzan, "mnist": mnist.read_mnist,
            "cifar10": cifar10.read_cifar10}
# locate(root, cache) -> {label: (path, sha256)}: data sets whose files are not a fixed list
_LOCATORS = {"imdb": imdb.locate, "gtzan": gtzan.locate, "cifar10": cifar10.locate}
_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
_VIEW = "view__"  # cache key prefix of an extra input view: view__<name>__train / __test


@dataclass(frozen=True, eq=False)  # eq on arrays is ambiguous; compare fields explicitly
class Dataset:
    name: str
    x_train: np.ndarray  # float32, standardized with train statistics only
    y_train: np.ndarray  # int64, 0..n_classes-1
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    info: dict  # JSON-serializable provenance: files, split, preprocessing, n_features
    # other inputs for the same rows, e.g. IMDB's tf-idf beside its token ids: {view: (x_train, x_test)}
    views: dict = field(default_factory=dict)

    def inputs(self, view: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(x_train, x_test) of the default input (view None) or of a named view."""
        if view is None:
            return self.x_train, self.x_test
        if view not in self.views:
            raise ValueError(f"{self.name} has no input view {view!r}; it has {sorted(self.views) or 'none'}")
        return self.views[view]


def _manifest_sources(name: str, root: Path, cache: Path) -> dict[str, tuple[Path, str]]:
    return {rel: (files.verify(rel, root, cache), files.MANIFEST[rel].sha256) for rel in files.DATASET_FILES[name]}


def _cache_key(sources: dict[str, tuple[Path, str]]) -> str:
    blob = json.dumps({"sources": sorted((label, sha) for label, (_, sha) in sources.items()),
                       "reader_version": READER_VERSION})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _read_cache(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in _ARRAYS}
            names = sorted({k[len(_VIEW):].rsplit("__", 1)[0] for k in z.files if k.startswith(_VIEW)})
            out["views"] = {v: (z[f"{_VIEW}{v}__train"], z[f"{_VIEW}{v}__test"]) for v in names}
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
            views = {f"{_VIEW}{v}__{part}": a for v, pair in result.get("views", {}).items()
                     for part, a in zip(("train", "test"), pair, strict=True)}
            # compressed: IMDB's dense tf-idf view is mostly zeros
            np.savez_compressed(f, **{k: result[k] for k in _ARRAYS}, **views,
                                classes=np.array(result["classes"]),
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
    sources = _LOCATORS.get(name, functools.partial(_manifest_sources, name))(root, cache)
    key = _cache_key(sources)
    path = cache / f"{name}-{key}.npz"
    result = _read_cache(path)
    if result is None:
        result = _READERS[name]({label: p for label, (p, _) in sources.items()}, cache)
        result["info"] = {
            "dataset": name,
            "files": {label: {"sha256": sha, "url": getattr(files.MANIFEST.get(label), "url", None)}
                      for label, (_, sha) in sources.items()},
            "reader_version": READER_VERSION,
            "cache_key": key,
            **result["info"],
        }
        result["info"] = json.loads(json.dumps(result["info"]))  # fail here, not in a report, if not JSON
        _write_cache(path, result)
    return Dataset(name, *(result[k] for k in _ARRAYS), result["classes"], result["info"],
                   result.get("views", {}))


def download(name: str, root: str | os.PathLike | None = None, base_url: str | None = None) -> list[Path]:
    """Fetch `name`'s official files into the data root, checked against their sha256 (needs internet)."""
    if name == "gtzan":
        return gtzan.download(data_root(root), base_url)
    return files.download(name, root, base_url)
