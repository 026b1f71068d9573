"""GTZAN genre collection (Tzanetakis & Cook 2002): 30-s clips of 10 genres as MFCC matrices.

Every clip present under `gtzan/genres/<genre>/` is used (the original `.au`
files, or `.wav` conversions of them), so the benchmark runs on a partial copy
and on the full 1,000 clips alike. An `.au` clip is checked against the sha256
of the original release; one that does not match or cannot be decoded is
reported and skipped, never cached. MFCCs (librosa, every parameter explicit in
`MfccParams`) are computed once per clip, in parallel over all cores, and cached
on disk under the clip's sha256 and the parameters' hash.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import re
import tarfile
import tempfile
import time
import wave
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from sharens.atomic import atomic_path, write_bytes
from sharens.data import files
from sharens.data.files import DataError
from sharens.data.splits import split_result, stratified_split

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
ARCHIVE_URL = "http://opihi.cs.uvic.ca/sound/genres.tar.gz"  # the original marsyas release (1,000 .au clips)
# where it is tried after the original host (down for years): Hugging Face's copy of the same archive
MIRRORS = ("https://huggingface.co/datasets/marsyas/gtzan/resolve/main/data/genres.tar.gz",)
AU_HEADER = (24, 64)  # bytes of an original .au header (24 plus its annotation), bounds seen in the collection
ARCHIVE_NAME = "genres.tar.gz"
TEST_SHARE = 0.3  # 700 / 300 clips on the full set
_CLIP = re.compile(r"^(?P<genre>[a-z]+)\.(?P<index>\d{5})\.(?P<ext>au|wav)$")
_REFERENCE = Path(__file__).with_name("gtzan_au_sha256.tsv")  # sha256 of the 1,000 original .au files
# Kereliuk et al. 2015's fault-filtered partition: {clip stem: train / valid / test}, 930 of the 1,000 clips
_FILTERED = Path(__file__).with_name("gtzan_kereliuk2015.tsv")


@dataclass(frozen=True)
class MfccParams:
    """Everything that determines a clip's feature matrix (the gcForest protocol: 1280 frames x 13)."""

    sample_rate: int = 22_050
    n_mfcc: int = 13
    frames: int = 1280  # cropped or zero-padded to this many
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None  # None: sample_rate / 2
    window: str = "hann"
    center: bool = True
    dct_type: int = 2
    norm: str = "ortho"
    librosa_version: str = ""  # filled in by `current`, so a new librosa means new features

    @classmethod
    def current(cls, **overrides) -> MfccParams:
        import librosa

        return cls(**overrides, librosa_version=librosa.__version__)

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def reference_checksums() -> dict[str, str]:
    return {name: sha for name, (sha, _) in _reference().items()}


def _reference() -> dict[str, tuple[str, int]]:
    """{original .au file name: (sha256, bytes)}."""
    lines = _REFERENCE.read_text().splitlines()[1:]
    return {name: (sha, int(size)) for name, sha, size in (line.split("\t") for line in lines)}


def _matches_original(name: str, data: bytes, reference: dict[str, tuple[str, int]]) -> bool:
    """An .au clip is its published sha256; a .wav conversion (as mirrors serve) is 22,050 Hz mono 16-bit
    with the original's sample count: its bytes cannot be checked, its samples' shape can."""
    stem, ext = name.rsplit(".", 1)
    sha, size = reference.get(f"{stem}.au", (None, 0))
    if ext == "au":
        return hashlib.sha256(data).hexdigest() == sha
    try:
        with wave.open(io.BytesIO(data)) as clip:
            shape = clip.getnchannels(), clip.getsampwidth(), clip.getframerate(), clip.getnframes()
            present = len(clip.readframes(shape[3])) // max(1, shape[0] * shape[1])  # a cut file holds fewer
    except (wave.Error, EOFError):
        return False
    low, high = ((size - header) // 2 for header in reversed(AU_HEADER))
    return sha is not None and shape[:3] == (1, 2, 22050) and low <= shape[3] == present <= high


def locate(root: Path, cache: Path) -> dict[str, tuple[Path, str]]:
    """Every clip file under gtzan/genres/ with its sha256 (hashed once per file, then remembered)."""
    folder = root / "gtzan" / "genres"
    clips = sorted(p for p in folder.glob("*/*") if _CLIP.match(p.name) and p.parent.name in GENRES)
    if not clips:
        raise files.DataMissing(
            f"no GTZAN clips found: looked for {folder}/<genre>/<genre>.NNNNN.au (or .wav). Get them with "
            f"`python -m sharens download gtzan --data-root {root}` or by hand from {ARCHIVE_URL} "
            f"(extract genres/ into {root / 'gtzan'}). The data root comes from --data-root or SHARENS_DATA.")
    return {f"gtzan/genres/{p.parent.name}/{p.name}": (p, files.file_sha256(p, cache)) for p in clips}


def mfcc(path: str, params: MfccParams) -> np.ndarray:
    """(frames, n_mfcc) float32 MFCC matrix of one clip, mono at `sample_rate`."""
    import librosa

    signal, rate = librosa.load(path, sr=params.sample_rate, mono=True)
    if len(signal) < params.n_fft:
        raise ValueError(f"only {len(signal)} samples")
    m = librosa.feature.mfcc(
        y=signal, sr=rate, n_mfcc=params.n_mfcc, n_fft=params.n_fft, hop_length=params.hop_length,
        n_mels=params.n_mels, fmin=params.fmin, fmax=params.fmax, window=params.window,
        center=params.center, dct_type=params.dct_type, norm=params.norm,
    ).T[: params.frames]
    out = np.zeros((params.frames, params.n_mfcc), dtype=np.float32)
    out[: len(m)] = m
    if not np.isfinite(out).all():
        raise ValueError("non-finite MFCC values")
    return out


def _extract_to_cache(path: str, target: str, params: MfccParams) -> str | None:
    """Worker: compute one clip's MFCC into `target` (atomically); the error text if it fails."""
    try:
        features = mfcc(path, params)
    except Exception as exc:  # a bad clip is reported and skipped, never fatal
        return f"unreadable: {type(exc).__name__}: {exc}"
    with atomic_path(Path(target)) as tmp, open(tmp, "wb") as f:
        np.save(f, features)
    return None


def extract(clips: dict[str, tuple[Path, str]], cache: Path, params: MfccParams,
            workers: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, str], dict]:
    """MFCCs of every clip ({label: matrix}), failures ({label: reason}) and timing stats.

    Clips whose features are cached are read back; the rest are computed in a
    process pool (spawned, so a parent holding torch threads is safe).
    """
    folder = cache / f"gtzan-mfcc-{params.key}"
    folder.mkdir(parents=True, exist_ok=True)
    target = {label: folder / f"{sha}.npy" for label, (_, sha) in clips.items()}
    todo = [label for label in clips if not target[label].is_file()]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    failures = {}
    start = time.perf_counter()
    if todo:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            jobs = {pool.submit(_extract_to_cache, str(clips[label][0]), str(target[label]), params): label
                    for label in todo}
            for job in tqdm(jobs, desc="MFCC", disable=None, leave=False):
                if (error := job.result()) is not None:
                    failures[jobs[job]] = error
    cold = time.perf_counter() - start
    start = time.perf_counter()
    features = {label: np.load(path) for label, path in target.items() if label not in failures}
    read = time.perf_counter() - start
    computed = len(todo) - len(failures)
    stats = {
        "clips": len(clips), "computed": computed, "from_cache": len(clips) - len(todo), "failed": len(failures),
        "workers": workers, "compute_seconds": cold,
        "computed_clips_per_s": computed / cold if computed else None,
        "cached_read_seconds": read, "cached_clips_per_s": len(features) / read if read else None,
    }
    return features, failures, stats


def _standardize_per_coefficient(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale each coefficient (last axis) by its train mean/std over all clips and frames."""
    axes = tuple(range(train.ndim - 1))
    mean, std = train.mean(axis=axes), train.std(axis=axes)
    std[std == 0] = 1.0
    return ((train - mean) / std).astype(np.float32), ((test - mean) / std).astype(np.float32)


def summary(matrices: np.ndarray) -> np.ndarray:
    """Per-clip mean and std of every coefficient over frames: (clips, 2 * n_mfcc)."""
    return np.concatenate([matrices.mean(axis=1), matrices.std(axis=1)], axis=1)


def n_test_clips(y: np.ndarray) -> int:
    """30% of the clips, raised to one per genre so that a small copy still tests every genre."""
    return min(max(round(TEST_SHARE * len(y)), len(np.unique(y))), len(y) - len(np.unique(y)))


def filtered_partition() -> dict[str, str]:
    """{clip stem such as 'blues.00029': 'train', 'valid' or 'test'} of Kereliuk et al.'s fault-filtered split."""
    lines = [line for line in _FILTERED.read_text().splitlines() if not line.startswith("#")][1:]
    return dict(line.split("\t") for line in lines)


def _random_split(labels: list[str], y: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """The paper's protocol: a stratified random 70 / 30 split by clip."""
    if min(np.bincount(y, minlength=len(GENRES))) < 2:
        raise DataError("GTZAN needs at least 2 usable clips of every genre (one to train, one to test); "
                        f"found {dict(zip(GENRES, np.bincount(y, minlength=len(GENRES)).tolist(), strict=True))}")
    train, test, split = stratified_split(y, n_test_clips(y))
    return train, test, {**split, "rule": split["rule"] + f"; by clip ({TEST_SHARE:.0%} test, at least one per genre)"}


def _filtered_split(labels: list[str], y: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Kereliuk et al.'s partition: its train and valid clips train (our nets hold out their own rows), its test
    clips test; the clips it leaves out (repeated, mislabelled or distorted, by Sturm 2013) are not used."""
    part = filtered_partition()
    stems = [Path(label).name.rsplit(".", 1)[0] for label in labels]
    train = np.array([i for i, stem in enumerate(stems) if part.get(stem) in ("train", "valid")], dtype=np.int64)
    test = np.array([i for i, stem in enumerate(stems) if part.get(stem) == "test"], dtype=np.int64)
    if not len(train) or not len(test):
        raise DataError(f"the fault-filtered GTZAN split needs clips on both sides; of the {len(labels)} clips "
                        f"present, {len(train)} train and {len(test)} test")
    return train, test, {
        "rule": "Kereliuk, Sturm & Larsen 2015, fault-filtered partition (443 train + 197 valid -> train, 290 test; "
                "no artist on two sides), lists from github.com/coreyker/dnn-mgr at bdad579",
        "left_out": [labels[i] for i, stem in enumerate(stems) if stem not in part],
        "test_rows_sha256": hashlib.sha256(test.tobytes()).hexdigest()}


def read_gtzan(paths: dict[str, Path], cache: Path, params: MfccParams | None = None, split=_random_split) -> dict:
    params = params or MfccParams.current()
    reference = reference_checksums()
    clips, skipped = {}, {}
    for label, path in paths.items():
        sha = files.file_sha256(path, cache)
        if path.suffix == ".au" and reference.get(path.name) != sha:
            skipped[label] = (f"checksum mismatch: expected sha256 {reference.get(path.name)}, found {sha}"
                              if path.name in reference else "not a clip of the original release")
            continue
        clips[label] = (path, sha)
    features, failures, extraction = extract(clips, cache, params)
    skipped.update(failures)
    _, _, warm = extract({k: clips[k] for k in features}, cache, params)  # all cached: the rerun speed
    extraction["cached_rerun_seconds"] = warm["cached_read_seconds"]
    labels = sorted(features)
    if not labels:
        raise DataError(f"none of the {len(paths)} GTZAN clips could be used: {skipped}")
    y = np.array([GENRES.index(Path(label).parent.name) for label in labels])
    x = np.stack([features[label] for label in labels])
    train, test, rule = split(labels, y)
    x_train, x_test = _standardize_per_coefficient(x[train], x[test])
    s_train, s_test = _standardize_per_coefficient(summary(x[train]), summary(x[test]))
    unverified = [label for label in labels if label.endswith(".wav")]
    info = {
        "split": {**rule, "test_clips": [labels[i] for i in test]},
        "preprocessing": (f"librosa.load(mono, sr={params.sample_rate}); librosa.feature.mfcc with the "
                          f"parameters in `mfcc`; {params.frames} frames kept (cropped or zero-padded); "
                          "each coefficient standardized with train mean/std. View `summary`: mean and std "
                          "of each coefficient over frames (for scikit-learn models)"),
        "mfcc": asdict(params),
        "clips_present": len(paths), "clips_used": len(train) + len(test),
        "skipped": skipped,
        "unverified_wav_conversions": unverified,
        "extraction": extraction,
        "views": {"summary": f"{2 * params.n_mfcc} per-clip statistics"},
    }
    result = split_result(x_train, y[train], x_test, y[test], GENRES, info)
    result["views"] = {"summary": (s_train, s_test)}
    return result


def read_gtzan_filtered(paths: dict[str, Path], cache: Path, params: MfccParams | None = None) -> dict:
    """GTZAN on Kereliuk et al.'s fault-filtered partition instead of the paper's random split."""
    return read_gtzan(paths, cache, params, split=_filtered_split)


def download_size() -> str:
    """What `download` fetches, in words (the archive's own size is not published; its clips' is)."""
    kept = sum(size for _, size in _reference().values())
    return f"{ARCHIVE_NAME} (size not published; its 1,000 clips are {kept / 1e6:,.0f} MB)"


def download(root: Path) -> list[Path]:
    """Fetch the archive (the original host, then its mirrors) and keep every clip that matches the original:
    an .au clip by its published sha256, a .wav conversion by its format and sample count."""
    reference = _reference()
    written, rejected = [], []
    with tempfile.TemporaryDirectory() as tmp:
        archive = files.fetch([ARCHIVE_URL, *MIRRORS], None, Path(tmp) / ARCHIVE_NAME)  # no hash: clips are checked
        try:
            tar = tarfile.open(archive, "r:*")
        except tarfile.TarError as exc:
            raise DataError(f"the GTZAN download {archive.name} is not a tar archive: {exc}") from exc
        with tar:
            for member in tar:
                name = Path(member.name).name
                match = _CLIP.match(name)
                if not (member.isfile() and match and match["genre"] in GENRES):
                    continue
                data = tar.extractfile(member).read()
                if not _matches_original(name, data, reference):
                    rejected.append(name)
                    continue
                target = root / "gtzan" / "genres" / match["genre"] / name
                write_bytes(target, data)
                written.append(target)
    if rejected:
        print(f"GTZAN: {len(rejected)} clips did not match the original release and were not kept: "
              f"{', '.join(sorted(rejected))}")
    if not written:
        raise DataError(f"the GTZAN download ({ARCHIVE_URL} or {', '.join(MIRRORS)}) held no clip that "
                        "matches the original release")
    return written
