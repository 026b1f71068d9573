"""The official data files: where they live, their checksums, and how to get them.

Everything downstream trusts these bytes, so each file is checked against its
published sha256 before use. Hashing is done once per (file, cache): the cache
dir remembers the hash of this exact file (path, size, mtime).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from sharens.atomic import write_bytes

UCI_BASE = "https://archive.ics.uci.edu/ml/machine-learning-databases"
SEMG_ZIP_URL = "https://archive.ics.uci.edu/static/public/313/semg+for+basic+hand+movements.zip"
SEMG_ZIP_FOLDER = "Database 1"
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
# torchvision's mirror of the official MNIST files (yann.lecun.com/exdb/mnist often refuses downloads)
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


class DataError(Exception):
    """A data file is missing, corrupt or unknown; the message says how to fix it."""


class DataMissing(DataError):
    """A data set's files are not under the data root (a download can fix it)."""

# every official URL's server is replaced by this one when set (a local mirror, or the tests' HTTP server):
# the path stays the official one, so a mirror serves the official layout
MIRROR_VARIABLE = "SHARENS_MIRROR"
CHUNK = 1 << 20


@dataclass(frozen=True)
class DataFile:
    relpath: str  # under the data root, e.g. "uci/adult.data"
    sha256: str
    url: str
    hint: str  # how to get it by hand
    dataset: str  # the data set whose `download` fetches it
    size: int  # bytes, as published (or measured on the verified file): what a download costs

    @property
    def name(self) -> str:
        return self.relpath.rsplit("/", 1)[1]


def _uci(relpath: str, sha256: str, size: int, folder: str, dataset_id: int, title: str) -> DataFile:
    url = f"{UCI_BASE}/{folder}/{relpath.rsplit('/', 1)[1]}"
    return DataFile(relpath, sha256, url, f"download {url} (UCI ML repository dataset {dataset_id}, {title})",
                    title.split()[0].lower(), size)


def _mnist(name: str, sha256: str, size: int) -> DataFile:
    url = MNIST_URL + name
    return DataFile(f"mnist/{name}", sha256, url, f"download {url} (MNIST, LeCun et al. 1998)", "mnist", size)


def _semg(name: str, sha256: str, size: int) -> DataFile:
    return DataFile(f"semg/{name}", sha256, SEMG_ZIP_URL,
                    f"UCI ML repository dataset 313 (sEMG for Basic Hand movements): "
                    f"unzip '{SEMG_ZIP_FOLDER}/{name}' from {SEMG_ZIP_URL}", "semg", size)


MANIFEST: dict[str, DataFile] = {f.relpath: f for f in (
    _uci("uci/letter-recognition.data", "2b89f3602cf768d3c8355267d2f13f2417809e101fc2b5ceee10db19a60de6e2", 712565,
         "letter-recognition", 59, "Letter Recognition"),
    _uci("uci/adult.data", "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d", 3974305,
         "adult", 2, "Adult"),
    _uci("uci/adult.test", "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05", 2003153,
         "adult", 2, "Adult"),
    _uci("uci/yeast.data", "7cf61776fc04f527f93bf57a327b863893a1225d82df02d457e8950173218258", 94976,
         "yeast", 110, "Yeast"),
    _semg("female_1.mat", "d865552d4795381362d388ecc8c6816c96db3ab07a47c96ccf61b962247c0179", 2115292),
    _semg("female_2.mat", "032a67db33a4b686cbd2cf90ef23b3c376599baef8911d1ae509e6df91ab3ff9", 2568352),
    _semg("female_3.mat", "6763e77302473c887e5dffb08dd231070763a07944a15dd7ec673dd8ba4b496d", 1885069),
    _semg("male_1.mat", "4637c7538292a331c30e06d58d8bafc6dfbab15ad1d4954250f19c05a52ae110", 1938468),
    _semg("male_2.mat", "f038709bc1e5bbd427cd378492a6314275b788f5e6a37ed25f154e8ad4e59820", 2144205),
    DataFile("imdb/aclImdb_v1.tar.gz", "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
             IMDB_URL, f"download {IMDB_URL} (Large Movie Review Dataset v1.0, Maas et al. 2011)", "imdb",
             84_125_825),
    # the same reviews repacked with xz and without train/unsup (the project's shared data root)
    DataFile("imdb/aclImdb_v1_labeled.tar.xz", "b52855f5949e630aa2c86ceb85a4c76ad02690705c2a4dc05464029772ac9708",
             IMDB_URL, f"it is a repack of the official archive; get the official one instead: {IMDB_URL}", "imdb",
             18_843_884),
    _mnist("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
    _mnist("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
    _mnist("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
    _mnist("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
    # official archive (md5 c58f30108f718f92721af3b95e74349a; Keras' loader pins the same sha256)
    DataFile("cifar10/cifar-10-python.tar.gz", "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
             CIFAR_URL, f"download {CIFAR_URL} (CIFAR-10 python version, Krizhevsky 2009)", "cifar10",
             170_498_071),
    # the project's shared repack (xz): every image pixel-identical to the official release, in its order
    DataFile("cifar10/cifar-10-python.tar.xz", "32c915124bc2482f886bf8718a53864fd77610db7eb8972ecdd049ed1776990d",
             CIFAR_URL, f"it is a repack of the official archive; get the official one instead: {CIFAR_URL}",
             "cifar10", 139_709_032),
)}

def data_root(root: str | os.PathLike | None = None) -> Path:
    """Explicit argument > $SHARENS_DATA > ./datasets."""
    chosen = root if root is not None else os.environ.get("SHARENS_DATA") or "datasets"
    return Path(chosen).expanduser().absolute()


def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """Explicit argument > $SHARENS_CACHE > ~/.cache/sharens; created if missing."""
    chosen = cache if cache is not None else os.environ.get("SHARENS_CACHE") or "~/.cache/sharens"
    path = Path(chosen).expanduser().absolute()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _how_to_get(entry: DataFile, root: Path) -> str:
    return (f"Get it with `python -m sharens download {entry.dataset} --data-root {root}`, "
            f"or by hand: {entry.hint}. The data root comes from --data-root or the SHARENS_DATA "
            f"environment variable (default ./datasets); it is now {root}.")


def file_sha256(path: Path, cache: str | os.PathLike | None = None) -> str:
    """sha256 of a file, remembered in the cache dir per (path, size, mtime) so each file is hashed once."""
    stat = path.stat()
    key = f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    memo = cache_dir(cache) / "hashes" / hashlib.sha256(key.encode()).hexdigest()[:32]
    try:
        return memo.read_text().strip()
    except OSError:
        pass
    found = _sha256(path)
    try:
        memo.parent.mkdir(exist_ok=True)
        write_bytes(memo, (found + "\n").encode())  # whole or absent: a half-written hash would fail verify
    except OSError:
        pass  # a read-only cache only costs re-hashing next time
    return found


def verify(relpath: str, root: str | os.PathLike | None = None, cache: str | os.PathLike | None = None) -> Path:
    """Path of an official file under `root`, after checking its sha256 (DataError if missing or wrong)."""
    entry = MANIFEST.get(relpath)
    if entry is None:
        raise DataError(f"unknown data file {relpath!r}; known: {', '.join(MANIFEST)}")
    root = data_root(root)
    path = root / relpath
    if not path.is_file():
        raise DataMissing(f"data file {relpath!r} not found: looked for {path}. {_how_to_get(entry, root)}")
    found = file_sha256(path, cache)
    if found != entry.sha256:
        raise DataError(f"data file {relpath!r} at {path} is corrupt or not the official file: "
                        f"expected sha256 {entry.sha256}, found {found}. Delete it and get it again. "
                        f"{_how_to_get(entry, root)}")
    return path


def is_verified(relpath: str, root: Path) -> bool:
    try:
        verify(relpath, root)
        return True
    except DataError:
        return False


def download(relpaths: tuple[str, ...], root: str | os.PathLike | None = None) -> list[Path]:
    """Fetch official files into `root` (skipping ones that already verify); return their verified paths."""
    root = data_root(root)
    for entry in (MANIFEST[r] for r in relpaths if not is_verified(r, root)):
        fetch([entry.url], entry.sha256, root / entry.relpath)
    return [verify(r, root) for r in relpaths]


def mirrored(url: str) -> str:
    """`url` on the server $SHARENS_MIRROR names, if any (same path: a mirror keeps the official layout)."""
    mirror = os.environ.get(MIRROR_VARIABLE)
    if not mirror:
        return url
    parts, base = urllib.parse.urlsplit(url), urllib.parse.urlsplit(mirror)
    return urllib.parse.urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))


def fetch(urls: list[str], sha256: str | None, target: Path, attempts: int = 2) -> Path:
    """Download `target` from the first of `urls` (mirrors, in order) that serves it, checked against `sha256`.

    Bytes land in `<target>.part` first, and an interrupted download resumes from it (HTTP Range). A file
    whose sha256 is wrong is deleted and fetched again (`attempts` times per URL) before the next URL is
    tried; only a verified file is renamed to `target`. The error names every URL tried and why it failed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    failures = []
    for url in map(mirrored, urls):
        for _ in range(attempts):
            try:
                _download(url, part)
            except (OSError, urllib.error.URLError) as exc:  # the partial file stays, to resume from
                failures.append(f"{url}: {exc}")
                break
            found = _sha256(part)
            if sha256 is None or found == sha256:
                part.replace(target)
                return target
            failures.append(f"{url}: sha256 {found}, not the published {sha256}")
            part.unlink()
    raise DataError(f"could not download {target.name} into {target.parent}: " + "; ".join(failures)
                    + ". Fetch it by hand from one of these URLs into that folder, or set "
                    f"{MIRROR_VARIABLE} to a server that holds the official files.")


def _download(url: str, part: Path) -> None:
    """Append `url`'s bytes to `part`, from where it ends (the whole file if the server ignores the range)."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as exc:
        if exc.code != 416:  # 416: nothing left past `have`, the partial file is whole
            raise
        return
    with response:
        resumed = response.status == 206
        total = int(response.headers.get("Content-Length") or 0) + (have if resumed else 0)
        with open(part, "ab" if resumed else "wb") as f, tqdm(
                total=total or None, initial=have if resumed else 0, unit="B", unit_scale=True,
                desc=part.name[: -len(".part")], disable=None, leave=False) as bar:
            for block in iter(lambda: response.read(CHUNK), b""):
                f.write(block)
                bar.update(len(block))
