"""CIFAR-10 (Krizhevsky 2009): the official 50,000 train / 10,000 test split of 32x32 colour images.

The batches are read straight out of the official `cifar-10-python.tar.gz` or the
suite's `.tar.xz` repack of it (nothing is extracted), by an unpickler that can
build only dicts, lists and numpy arrays: a pickle may otherwise run any code.

The repack's training set is the official one, in order, but its test set is not:
its order is class-interleaved and some images come from a lossy JPEG copy.
`test_provenance.csv` says which test rows are lossless; the reader checks that
file against the test batch label by label (so a CSV from another copy cannot
silently mark the wrong rows) and returns its mask as `test_masks["lossless"]`,
so a report can also give accuracy on the rows that are exactly the official
images. Pixels stay uint8 (N, 3, 32, 32); the models scale them on the device.
"""

from __future__ import annotations

import codecs
import csv
import io
import lzma
import pickle
import tarfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from sharens.data import files
from sharens.data.files import DataError
from sharens.data.uci import counts, split_result

CIFAR_ARCHIVE = "cifar10/cifar-10-python.tar.gz"  # the official download
CIFAR_REPACK = "cifar10/cifar-10-python.tar.xz"  # the suite's shared data root: xz, test set partly lossy
CIFAR_PROVENANCE = "cifar10/test_provenance.csv"  # belongs to the repack: fidelity of every test position

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
BATCH_ROWS = 10_000  # rows of every batch (tests shrink it)
SHAPE = (3, 32, 32)  # each row is 1024 red, 1024 green, 1024 blue bytes, row-major
LOSSLESS = "lossless"  # the provenance file's `fidelity` of an exact official image

# what the official pickles (python 2 cPickle, protocol 2) need to build their numpy arrays, plus
# _codecs.encode, which Python 3 uses for bytes at protocol 2 (a re-pickled copy); nothing else loads
_RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's own _reconstruct, wherever this numpy keeps it
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
            ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
            ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): codecs.encode}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not a CIFAR-10 batch") from None


def unpickle(data: bytes, what: str) -> dict:
    """A batch or batches.meta as a dict with bytes keys (the official pickles come from Python 2)."""
    try:
        out = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as exc:  # any malformed or foreign pickle
        raise DataError(f"CIFAR-10 {what} is not a readable batch pickle: {exc}") from exc
    if not isinstance(out, dict):
        raise DataError(f"CIFAR-10 {what} holds a {type(out).__name__}, not a dict")
    return out


def locate(root: Path, cache: Path) -> dict[str, tuple[Path, str]]:
    """The official archive if present, else the repack with its provenance file (both verified).

    The provenance file describes only the repack's test set, so it goes with the repack alone.
    """
    wanted = [CIFAR_ARCHIVE] if (root / CIFAR_ARCHIVE).is_file() else [CIFAR_REPACK, CIFAR_PROVENANCE]
    if not (root / wanted[0]).is_file():
        raise DataError(
            f"CIFAR-10 not found: looked for {root / CIFAR_ARCHIVE} and {root / CIFAR_REPACK}. Get it with "
            f"`python -m sharens download cifar10 --data-root {root}` or by hand from {files.CIFAR_URL}. The data "
            f"root comes from --data-root or SHARENS_DATA; it is now {root}.")
    return {rel: (files.verify(rel, root, cache), files.MANIFEST[rel].sha256) for rel in wanted}


def _read_archive(path: Path) -> dict[str, dict]:
    """{member name: unpickled dict} of the batches and batches.meta, in one pass over the archive."""
    wanted = {*TRAIN_BATCHES, TEST_BATCH, META}
    found = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                folder, _, name = member.name.rpartition("/")
                if member.isfile() and name in wanted and folder.rsplit("/", 1)[-1] == FOLDER:
                    found[name] = unpickle(archive.extractfile(member).read(), f"{name} in {path}")
    except (tarfile.TarError, lzma.LZMAError, zlib.error, EOFError, OSError) as exc:
        raise DataError(f"{path} is not a readable tar archive ({exc}); delete it and get it again") from exc
    missing = sorted(wanted - set(found))
    if missing:
        raise DataError(f"{path} lacks {', '.join(f'{FOLDER}/{m}' for m in missing)}; "
                        f"is it the CIFAR-10 python version ({files.CIFAR_URL})?")
    return found


def _batch(batch: dict, what: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    data, labels = batch.get(b"data"), np.asarray(batch.get(b"labels", []))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape != (BATCH_ROWS, np.prod(SHAPE)):
        raise DataError(f"CIFAR-10 {what}: expected uint8 data of shape ({BATCH_ROWS}, {np.prod(SHAPE)}), found "
                        f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    if labels.shape != (BATCH_ROWS,) or labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= n_classes:
        raise DataError(f"CIFAR-10 {what}: expected {BATCH_ROWS} labels in 0..{n_classes - 1}")
    return data.reshape(-1, *SHAPE), labels.astype(np.int64)


def read_provenance(path: Path, y_test: np.ndarray, classes: tuple[str, ...]) -> tuple[np.ndarray, dict]:
    """Lossless mask of the test rows and their fidelity counts, after checking the file matches the batch.

    Every position's label (and class name) must agree with the test batch: a
    provenance file of another copy would otherwise mask the wrong rows.
    """
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = {"position", "label", "class", "fidelity"} - set(rows[0] if rows else ())
    if missing:
        raise DataError(f"{path}: no column {', '.join(sorted(missing))}; is it CIFAR-10's test_provenance.csv?")
    if len(rows) != len(y_test):
        raise DataError(f"{path} describes {len(rows)} test images, the test batch has {len(y_test)}")
    try:
        positions = np.array([int(r["position"]) for r in rows])
        labels = np.array([int(r["label"]) for r in rows])
    except ValueError as exc:
        raise DataError(f"{path}: a position or label is not an integer ({exc})") from exc
    if not (positions == np.arange(len(rows))).all():
        raise DataError(f"{path}: rows are not positions 0..{len(rows) - 1} in order")
    wrong = np.flatnonzero(labels != y_test)
    if wrong.size:
        p = wrong[0]
        raise DataError(f"{path}: labels disagree with the test batch at {wrong.size} positions (first: position "
                        f"{p}, file {labels[p]}, test batch {y_test[p]}); this provenance file does not belong "
                        "to this archive")
    named = [p for p, r in enumerate(rows) if r["class"] != classes[y_test[p]]]
    if named:
        p = named[0]
        raise DataError(f"{path}: class names disagree with the test batch at {len(named)} positions (first: "
                        f"position {p}, file {rows[p]['class']!r}, test batch {classes[y_test[p]]!r})")
    fidelity = [r["fidelity"] for r in rows]
    return np.array([f == LOSSLESS for f in fidelity]), dict(Counter(fidelity))


def read_cifar10(paths: dict[str, Path], cache: Path | None = None) -> dict:
    """CIFAR-10: data_batch_1..5 train (original order), test_batch test; uint8 (N, 3, 32, 32).

    `paths` holds one archive (official or repack) and, for the repack, its
    provenance file; without one the official test set is taken as all lossless.
    """
    archives = [rel for rel in paths if rel != CIFAR_PROVENANCE]
    if len(archives) != 1:
        raise DataError(f"CIFAR-10 needs exactly one archive ({CIFAR_ARCHIVE} or {CIFAR_REPACK}), got {archives}")
    (source,) = archives
    if source == CIFAR_REPACK and CIFAR_PROVENANCE not in paths:
        raise DataError(f"the repack {CIFAR_REPACK} has a partly lossy test set; it needs {CIFAR_PROVENANCE} "
                        "beside it to say which test rows are lossless")
    batches = _read_archive(paths[source])
    classes = tuple(name.decode() for name in batches[META].get(b"label_names", []))
    if len(classes) != 10:
        raise DataError(f"CIFAR-10 {META} in {paths[source]}: expected 10 label_names, found {classes}")
    train = [_batch(batches[name], name, len(classes)) for name in TRAIN_BATCHES]
    x_train, y_train = np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
    x_test, y_test = _batch(batches[TEST_BATCH], TEST_BATCH, len(classes))
    if CIFAR_PROVENANCE in paths:
        lossless, fidelity = read_provenance(paths[CIFAR_PROVENANCE], y_test, classes)
        test_set = (f"not the official test set: class-interleaved order, and {len(y_test) - lossless.sum():,} of "
                    f"{len(y_test):,} images come from a lossy copy (fidelity per row in {CIFAR_PROVENANCE}); "
                    "accuracy may be a few points below the paper's; test_masks['lossless'] marks the exact ones")
    else:
        lossless, fidelity = np.ones(len(y_test), dtype=bool), {LOSSLESS: len(y_test)}
        test_set = "no provenance file: the official test batch, every image taken as lossless"
    info = {
        "split": {"rule": "official: data_batch_1..5 train (50,000, original order) / test_batch (10,000)"},
        "source": source,
        "preprocessing": "pickled uint8 rows reshaped to (N, 3, 32, 32) (CHW); pixels kept as uint8 0..255 "
                         "and scaled on the device",
        "input_shape": list(SHAPE),
        "test_set": test_set,
        "test_fidelity": fidelity,
        "lossless_test_rows": int(lossless.sum()),
        "lossless_test_class_counts": counts(y_test[lossless], classes),
    }
    result = split_result(x_train, y_train, x_test, y_test, classes, info)
    result["test_masks"] = {"lossless": lossless}
    return result
