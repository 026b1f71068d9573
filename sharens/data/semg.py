"""Reader for UCI sEMG for Basic Hand movements, Database 1 (Sapsanis et al. 2013).

Every (subject, channel, trial) recording of 3,000 samples is one row, labelled
with its gesture: 5 subjects x 6 gestures x 2 channels x 30 trials = 1,800 rows.
UCI publishes the five files inside one zip (whose own checksum is not
published), so `download` fetches the zip and keeps each file that matches its
published sha256.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import scipy.io

from sharens.atomic import write_bytes
from sharens.data import files
from sharens.data.files import DataError
from sharens.data.splits import split_result, standardize, stratified_split

SUBJECTS = ("female_1", "female_2", "female_3", "male_1", "male_2")
GESTURES = ("cyl", "hook", "tip", "palm", "spher", "lat")
CHANNELS = ("ch1", "ch2")
TRIALS, SAMPLES = 30, 3000
TEST_SIZE = 360
FILES = tuple(f"semg/{subject}.mat" for subject in SUBJECTS)
ZIP_NAME = files.SEMG_ZIP_URL.rsplit("/", 1)[1]


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


def download_size() -> str:
    """What `download` fetches, in words (UCI publishes no size for its zip; the five files it keeps are known)."""
    kept = sum(files.MANIFEST[rel].size for rel in FILES)
    return f"{ZIP_NAME} (size not published; the 5 files kept are {kept / 1e6:.1f} MB)"


def download(root: Path) -> list[Path]:
    """The five files out of UCI's zip (no published hash of its own), each checked on its own."""
    todo = [files.MANIFEST[rel] for rel in FILES if not files.is_verified(rel, root)]
    if todo:
        with tempfile.TemporaryDirectory() as tmp:
            _extract(files.fetch([files.SEMG_ZIP_URL], None, Path(tmp) / ZIP_NAME), todo, root)
    return [files.verify(rel, root) for rel in FILES]


def _find_in_zip(zf: zipfile.ZipFile, name: str) -> bytes | None:
    """Bytes of `Database 1/<name>`, looking inside nested zips too (the UCI bundle may wrap one)."""
    for member in zf.namelist():
        if member.endswith(f"{files.SEMG_ZIP_FOLDER}/{name}"):
            return zf.read(member)
    for member in zf.namelist():
        if member.lower().endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(zf.read(member))) as inner:
                found = _find_in_zip(inner, name)
            if found is not None:
                return found
    return None


def _extract(zip_path: Path, entries: list[files.DataFile], root: Path) -> None:
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as exc:
        raise DataError(f"the sEMG download {zip_path.name} is not a zip file: {exc}") from exc
    with zf:
        for entry in entries:
            data = _find_in_zip(zf, entry.name)
            if data is None:
                raise DataError(f"'{files.SEMG_ZIP_FOLDER}/{entry.name}' is not in the sEMG zip {zip_path.name}")
            found = hashlib.sha256(data).hexdigest()
            if found != entry.sha256:
                raise DataError(f"'{files.SEMG_ZIP_FOLDER}/{entry.name}' in the sEMG zip is not the official file: "
                                f"expected sha256 {entry.sha256}, found {found}")
            write_bytes(root / entry.relpath, data)  # never a half-written official file
