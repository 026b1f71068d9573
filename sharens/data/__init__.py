"""Data sets of the suite: verified official files in, standardized train/test arrays out.

Each data set is declared once, in `SOURCES`: the files it reads (or how to
find them), the reader that splits them, the reader's version, and how to
fetch them. The derived arrays are cached as .npz in the cache dir, keyed by
the source files' sha256 and the reader's version, so a change of either
rebuilds them; the data root itself is only ever read. The same two things
(`identify`) key every stored cell, so a changed file or reader also means a
recomputed cell.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sharens.atomic import atomic_path
from sharens.data import cifar10, files, gtzan, imdb, mnist, semg
from sharens.data.files import DataError, DataMissing, cache_dir, data_root
from sharens.data.uci import read_adult, read_letter, read_yeast

__all__ = ["DATASETS", "SOURCES", "DataError", "DataMissing", "Dataset", "cache_dir", "cache_key", "data_root",
           "download", "ensure", "identify", "load_dataset"]


@dataclass(frozen=True)
class Source:
    """One data set: what it reads, how it is read, and how it is fetched.

    - `name`: the id tables and specs use.
    - `read(paths, cache)`: the split (x_train, y_train, x_test, y_test, classes, info, optional views).
    - `version`: bumped whenever `read`'s output changes (it keys the cached arrays and every cell).
    - `files`: the manifest files it reads, and `download` fetches.
    - `locate(root, cache)`: replaces `files` where the files present may vary ({label: (path, sha256)}).
    - `fetch(root)`: replaces the plain download where the files come out of a bundle; `fetch_size()` says
      what that bundle costs.
    """

    name: str
    read: Callable[[dict[str, Path], Path], dict]
    version: int
    files: tuple[str, ...] = ()
    locate: Callable[[Path, Path], dict[str, tuple[Path, str]]] | None = None
    fetch: Callable[[Path], list[Path]] | None = None
    fetch_size: Callable[[], str] | None = None

    def sources(self, root: Path, cache: Path) -> dict[str, tuple[Path, str]]:
        """{label: (verified path, sha256)} of the files this data set reads under `root`."""
        if self.locate is not None:
            return self.locate(root, cache)
        return {rel: (files.verify(rel, root, cache), files.MANIFEST[rel].sha256) for rel in self.files}

    def download(self, root: Path) -> list[Path]:
        if self.fetch is not None:
            return self.fetch(root)
        return files.download(self.files, root)

    def download_size(self) -> str:
        """What `download` fetches, in words: file names and megabytes."""
        if self.fetch_size is not None:
            return self.fetch_size()
        fetched = [files.MANIFEST[rel] for rel in self.files]
        return f"{', '.join(f.name for f in fetched)} ({sum(f.size for f in fetched) / 1e6:.1f} MB)"


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("letter", read_letter, 1, ("uci/letter-recognition.data",)),
    Source("adult", read_adult, 1, ("uci/adult.data", "uci/adult.test")),
    Source("yeast", read_yeast, 1, ("uci/yeast.data",)),
    Source("semg", semg.read_semg, 1, semg.FILES, fetch=semg.download, fetch_size=semg.download_size),
    # `files` is what `download` fetches; `locate` also accepts the repack or an extracted folder
    Source("imdb", imdb.read_imdb, 1, (imdb.OFFICIAL,), locate=imdb.locate),
    Source("gtzan", gtzan.read_gtzan, 1, locate=gtzan.locate, fetch=gtzan.download, fetch_size=gtzan.download_size),
    # the same clips on Kereliuk et al.'s fault-filtered partition (Table 4's second split)
    Source("gtzan_filtered", gtzan.read_gtzan_filtered, 1, locate=gtzan.locate, fetch=gtzan.download,
           fetch_size=gtzan.download_size),
    Source("mnist", mnist.read_mnist, 1, mnist.MNIST_FILES),
    # version 2: the shared repack's test set became the official one; no lossless mask
    Source("cifar10", cifar10.read_cifar10, 2, (cifar10.CIFAR_ARCHIVE,), locate=cifar10.locate),
)}
DATASETS: tuple[str, ...] = tuple(SOURCES)
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


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return SOURCES[name]


def _identity(source: Source, sources: dict[str, tuple[Path, str]]) -> dict:
    return {"files": {label: sha for label, (_, sha) in sorted(sources.items())}, "reader_version": source.version}


def identify(name: str, root: str | os.PathLike | None = None, cache: str | os.PathLike | None = None) -> dict:
    """What determines a data set's arrays: its files' sha256 and its reader's version (files verified)."""
    source = _source(name)
    return _identity(source, source.sources(data_root(root), cache_dir(cache)))


def cache_key(identity: dict) -> str:
    """The name of the cached arrays of a data set with this identity (`identify`)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


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
    views = {f"{_VIEW}{v}__{part}": a for v, pair in result.get("views", {}).items()
             for part, a in zip(("train", "test"), pair, strict=True)}
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # compressed: IMDB's dense tf-idf view is mostly zeros
            np.savez_compressed(f, **{k: result[k] for k in _ARRAYS}, **views, classes=np.array(result["classes"]),
                                info=np.array(json.dumps(result["info"], sort_keys=True)))
    except OSError as exc:
        warnings.warn(f"could not cache {path}: {exc}", stacklevel=3)


def load_dataset(name: str, root: str | os.PathLike | None = None,
                 cache: str | os.PathLike | None = None) -> Dataset:
    """Verified, split and standardized `name`; built once, then read from the cache."""
    source = _source(name)
    root, cache = data_root(root), cache_dir(cache)
    sources = source.sources(root, cache)
    identity = _identity(source, sources)
    key = cache_key(identity)
    path = cache / f"{name}-{key}.npz"
    result = _read_cache(path)
    if result is None:
        result = source.read({label: p for label, (p, _) in sources.items()}, cache)
        result["info"] = {
            "dataset": name,
            "files": {label: {"sha256": sha, "url": getattr(files.MANIFEST.get(label), "url", None)}
                      for label, (_, sha) in sources.items()},
            "reader_version": source.version,
            "cache_key": key,
            **result["info"],
        }
        result["info"] = json.loads(json.dumps(result["info"]))  # fail here, not in a report, if not JSON
        _write_cache(path, result)
    return Dataset(name, *(result[k] for k in _ARRAYS), result["classes"], result["info"], result.get("views", {}))


def download(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """Fetch `name`'s official files into the data root, checked against their sha256 (needs internet, or a
    mirror named by $SHARENS_MIRROR)."""
    return _source(name).download(data_root(root))


def ensure(name: str, root: str | os.PathLike | None = None, allow_download: bool = True) -> dict:
    """`identify(name)`, downloading the data set first if its files are not under the data root."""
    try:
        return identify(name, root)
    except files.DataMissing as missing:
        if not allow_download:
            raise DataMissing(f"{missing} (nothing is downloaded with --no-download or --dry-run)") from missing
    print(f"{name}: not under {data_root(root)}; downloading it", flush=True)
    download(name, root)
    return identify(name, root)
