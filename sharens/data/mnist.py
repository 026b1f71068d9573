"""MNIST (LeCun et al. 1998): the official 60,000 train / 10,000 test digits, 28x28, from the IDX files.

The four gzipped IDX files are parsed with numpy alone (no torchvision), and every
header is checked, so a truncated or mixed-up file is a DataError that names it
rather than a reshape error later. Pixels stay uint8 0..255: the models scale them
on the device, which keeps the cached arrays and host-to-device copies 4x smaller
than float32.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from sharens.data.files import DataError
from sharens.data.splits import split_result

# split: (images relpath, labels relpath, rows)
SPLITS: dict[str, tuple[str, str, int]] = {
    "train": ("mnist/train-images-idx3-ubyte.gz", "mnist/train-labels-idx1-ubyte.gz", 60_000),
    "test": ("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz", 10_000),
}
MNIST_FILES: tuple[str, ...] = tuple(rel for images, labels, _ in SPLITS.values() for rel in (images, labels))

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (images, rows, columns)
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (labels)
SIDE = 28
CLASSES = tuple(str(d) for d in range(10))


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array of an IDX file (gzipped or not); DataError if its magic number or size is off.

    The number of dimensions is the low byte of the magic number, so `magic` fixes the shape's rank too.
    """
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; truncation an EOFError
            raise DataError(f"{path} is not a readable gzip file ({exc}); delete it and get it again") from exc
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic or len(raw) < header:
        raise DataError(f"{path} is not an IDX file with magic number {magic} (found {found}, {len(raw)} bytes); "
                        "is it the right MNIST file?")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{path}: its header says shape {shape}, i.e. {expected} bytes, but it has {len(raw)}; "
                        "the file is truncated or corrupt, delete it and get it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()  # writable, owns its memory


def read_mnist(paths: dict[str, Path], cache: Path | None = None) -> dict:
    """MNIST: official split; images uint8 (N, 1, 28, 28) in file order, labels 0..9."""
    parts = {}
    for split, (images_rel, labels_rel, rows) in SPLITS.items():
        images = read_idx(paths[images_rel], IMAGES_MAGIC)
        labels = read_idx(paths[labels_rel], LABELS_MAGIC)
        if images.shape != (rows, SIDE, SIDE) or labels.shape != (rows,):
            raise DataError(f"MNIST {split}: expected {rows} images of {SIDE}x{SIDE} and {rows} labels, found "
                            f"images {images.shape} in {paths[images_rel]} and labels {labels.shape} in "
                            f"{paths[labels_rel]}")
        if labels.max() >= len(CLASSES):
            raise DataError(f"MNIST {split}: label {labels.max()} in {paths[labels_rel]} is not a digit")
        parts[split] = images[:, None], labels.astype(np.int64)
    info = {"split": {"rule": "official: 60,000 train / 10,000 test"},
            "preprocessing": "IDX files read as is, rows in file order; pixels kept as uint8 0..255, shape "
                             "(N, 1, 28, 28), and scaled on the device",
            "input_shape": [1, SIDE, SIDE]}
    (x_train, y_train), (x_test, y_test) = parts["train"], parts["test"]
    return split_result(x_train, y_train, x_test, y_test, CLASSES, info)
