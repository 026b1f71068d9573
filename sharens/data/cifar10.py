"""CIFAR-10 (Krizhevsky 2009): the official 50,000 train / 10,000 test split of 32x32 colour images.

The batches are read straight out of the official `cifar-10-python.tar.gz` or the
suite's `.tar.xz` repack of it (nothing is extracted), by an unpickler that can
build only dicts, lists and numpy arrays: a pickle may otherwise run any code.

Both hold every official image, pixel for pixel, in the official order with
the official labels (the repack differs only in compression and in made-up
`filenames` entries, so its batch files cannot match the official md5). Pixels
stay uint8 (N, 3, 32, 32); the models scale them on the device.
"""

from __future__ import annotations

import codecs
import io
import lzma
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from sharens.data import files
from sharens.data.files import DataError
from sharens.data.splits import split_result

CIFAR_ARCHIVE = "cifar10/cifar-10-python.tar.gz"  # the official download
CIFAR_REPACK = "cifar10/cifar-10-python.tar.xz"  # the suite's shared data root: the same images, xz

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
BATCH_ROWS = 10_000  # rows of every batch (tests shrink it)
SHAPE = (3, 32, 32)  # each row is 1024 red, 1024 green, 1024 blue bytes, row-major

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
    """The official archive if present, else the repack (verified against its sha256)."""
    found = next((rel for rel in (CIFAR_ARCHIVE, CIFAR_REPACK) if (root / rel).is_file()), None)
    if found is None:
        raise files.DataMissing(
            f"CIFAR-10 not found: looked for {root / CIFAR_ARCHIVE} and {root / CIFAR_REPACK}. Get it with "
            f"`python -m sharens download cifar10 --data-root {root}` or by hand from {files.CIFAR_URL}. The data "
            f"root comes from --data-root or SHARENS_DATA; it is now {root}.")
    return {found: (files.verify(found, root, cache), files.MANIFEST[found].sha256)}


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


def read_cifar10(paths: dict[str, Path], cache: Path | None = None) -> dict:
    """CIFAR-10: data_batch_1..5 train (original order), test_batch test; uint8 (N, 3, 32, 32)."""
    if len(paths) != 1:
        raise DataError(f"CIFAR-10 needs exactly one archive ({CIFAR_ARCHIVE} or {CIFAR_REPACK}), got {list(paths)}")
    ((source, path),) = paths.items()
    batches = _read_archive(path)
    classes = tuple(name.decode() for name in batches[META].get(b"label_names", []))
    if len(classes) != 10:
        raise DataError(f"CIFAR-10 {META} in {path}: expected 10 label_names, found {classes}")
    train = [_batch(batches[name], name, len(classes)) for name in TRAIN_BATCHES]
    x_train, y_train = np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
    x_test, y_test = _batch(batches[TEST_BATCH], TEST_BATCH, len(classes))
    info = {
        "split": {"rule": "official: data_batch_1..5 train (50,000, original order) / test_batch (10,000, "
                          "original order)"},
        "source": source,
        "preprocessing": "pickled uint8 rows reshaped to (N, 3, 32, 32) (CHW); pixels kept as uint8 0..255 "
                         "and scaled on the device",
        "input_shape": list(SHAPE),
    }
    return split_result(x_train, y_train, x_test, y_test, classes, info)
