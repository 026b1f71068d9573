"""MNIST and CIFAR-10: IDX parsing, the official splits on the real files, the safe CIFAR unpickler."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from sharens.data import cifar10, download, files, load_dataset, mnist
from sharens.data.files import DataError

REPO = Path(__file__).resolve().parents[2]
ROOT = Path(os.environ.get("SHARENS_DATA") or REPO.parent / "shared" / "data")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def need(*relpaths: str) -> dict[str, Path]:
    missing = [rel for rel in relpaths if not (ROOT / rel).is_file()]
    if missing:
        pytest.skip(f"real data {', '.join(missing)} not found under {ROOT} (set SHARENS_DATA)")
    return {rel: ROOT / rel for rel in relpaths}


@pytest.fixture(scope="module")
def mnist_data() -> dict:
    return mnist.read_mnist(need(*mnist.MNIST_FILES))


@pytest.fixture(scope="module")
def cifar_data() -> dict:
    """Read once for the module: decompressing the repack takes about ten seconds."""
    return cifar10.read_cifar10(need(cifar10.CIFAR_REPACK))


# --- MNIST ------------------------------------------------------------------------------------

def _idx(array: np.ndarray, magic: int) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape) + array.tobytes()


def test_mnist_reader_on_the_real_files(mnist_data):
    d = mnist_data
    assert d["x_train"].shape == (60000, 1, 28, 28) and d["x_test"].shape == (10000, 1, 28, 28)
    assert d["x_train"].dtype == d["x_test"].dtype == np.uint8 and d["x_train"].max() == 255
    assert d["y_train"].dtype == d["y_test"].dtype == np.int64
    assert d["classes"] == tuple("0123456789")
    assert sum(d["info"]["train_class_counts"].values()) == 60000 == np.bincount(d["y_train"]).sum()
    assert np.bincount(d["y_test"], minlength=10).sum() == 10000 and (np.bincount(d["y_train"]) > 5000).all()
    assert d["info"]["input_shape"] == [1, 28, 28] and "uint8" in d["info"]["preprocessing"]


def test_mnist_keeps_file_order(mnist_data):
    assert mnist_data["y_train"][0] == 5  # the well-known first training digit
    assert mnist_data["y_test"][0] == 7


def test_read_idx_reads_plain_and_gzipped_files(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "plain").write_bytes(_idx(images, mnist.IMAGES_MAGIC))
    (tmp_path / "packed.gz").write_bytes(gzip.compress(_idx(images, mnist.IMAGES_MAGIC)))
    for name in ("plain", "packed.gz"):
        found = mnist.read_idx(tmp_path / name, mnist.IMAGES_MAGIC)
        np.testing.assert_array_equal(found, images)
        assert found.flags.writeable


@pytest.mark.parametrize("doctor, message", [
    (lambda raw: gzip.compress(raw[:-1]), "is truncated or corrupt"),
    (lambda raw: gzip.compress(_idx(np.zeros(6, np.uint8), mnist.LABELS_MAGIC)), "magic number 2051"),
    (lambda raw: gzip.compress(raw)[:-9], "not a readable gzip file"),
    (lambda raw: b"", "magic number 2051"),
])
def test_malformed_idx_is_a_clear_error(tmp_path, doctor, message):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(doctor(_idx(np.zeros((2, 3, 3), np.uint8), mnist.IMAGES_MAGIC)))
    with pytest.raises(DataError, match=message):
        mnist.read_idx(path, mnist.IMAGES_MAGIC)


def test_mnist_reader_rejects_a_truncated_real_file(tmp_path):
    paths = need(*mnist.MNIST_FILES)
    rel = "mnist/t10k-labels-idx1-ubyte.gz"
    broken = tmp_path / "t10k-labels-idx1-ubyte.gz"
    broken.write_bytes(gzip.compress(gzip.decompress(paths[rel].read_bytes())[:-100]))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz.*truncated"):
        mnist.read_mnist({**paths, rel: broken})


def test_mnist_reader_checks_the_row_counts(tmp_path):
    paths = {}
    for images_rel, labels_rel, _ in mnist.SPLITS.values():
        for rel, array, magic in ((images_rel, np.zeros((3, 28, 28), np.uint8), mnist.IMAGES_MAGIC),
                                  (labels_rel, np.zeros(3, np.uint8), mnist.LABELS_MAGIC)):
            paths[rel] = tmp_path / rel.rsplit("/", 1)[1]
            paths[rel].write_bytes(gzip.compress(_idx(array, magic)))
    with pytest.raises(DataError, match=r"MNIST train: expected 60000 images of 28x28"):
        mnist.read_mnist(paths)


# --- CIFAR-10 ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_cifar10_reader_on_the_real_repack(cifar_data):
    d = cifar_data
    assert d["x_train"].shape == (50000, 3, 32, 32) and d["x_test"].shape == (10000, 3, 32, 32)
    assert d["x_train"].dtype == d["x_test"].dtype == np.uint8
    assert d["y_train"].dtype == d["y_test"].dtype == np.int64
    assert d["classes"] == CIFAR_CLASSES
    assert np.bincount(d["y_train"]).tolist() == [5000] * 10
    assert np.bincount(d["y_test"]).tolist() == [1000] * 10
    assert d["y_train"][:5].tolist() == [6, 9, 9, 4, 1]  # data_batch_1's original order (frog, truck, ...)
    assert d["y_test"][:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]  # test_batch's official order (cat, ship, ...)
    assert d["info"]["input_shape"] == [3, 32, 32] and d["info"]["source"] == cifar10.CIFAR_REPACK


def _mini_cifar(path: Path, rows: int, y_test: list[int], meta_global=None) -> None:
    """A CIFAR-10 python archive with `rows` images per batch; every pixel of an image is its label."""
    def batch(labels: list[int]) -> bytes:
        data = np.repeat(np.array(labels, np.uint8)[:, None], 3072, axis=1)
        return pickle.dumps({b"batch_label": b"mini", b"labels": labels, b"data": data,
                             b"filenames": [b"x.png"] * len(labels)}, protocol=2)

    members = {f"data_batch_{i}": batch([(i + j) % 10 for j in range(rows)]) for i in range(1, 6)}
    members["test_batch"] = batch(y_test)
    meta = {b"label_names": [c.encode() for c in CIFAR_CLASSES], b"num_cases_per_batch": rows, b"extra": meta_global}
    members["batches.meta"] = pickle.dumps(meta, protocol=2)
    with tarfile.open(path, "w:" + path.suffix.lstrip(".")) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{cifar10.FOLDER}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_cifar10_reader_takes_either_archive(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10, "BATCH_ROWS", 3)
    y_test = [4, 0, 9]
    for archive in (cifar10.CIFAR_ARCHIVE, cifar10.CIFAR_REPACK):
        path = tmp_path / archive.rsplit("/", 1)[1]
        _mini_cifar(path, 3, y_test)
        d = cifar10.read_cifar10({archive: path})
        assert d["x_train"].shape == (15, 3, 32, 32) and d["y_train"][:4].tolist() == [1, 2, 3, 2]
        assert d["y_test"].tolist() == y_test and (d["x_test"][:, 2, 31, 31] == y_test).all()
        assert d["info"]["source"] == archive
    with pytest.raises(DataError, match="exactly one archive"):
        cifar10.read_cifar10({})


def test_cifar10_refuses_a_pickle_that_would_run_code(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cifar10, "BATCH_ROWS", 1)

    class Payload:
        def __reduce__(self):
            return print, ("this must never run",)

    archive = tmp_path / "cifar-10-python.tar.gz"
    _mini_cifar(archive, 1, [0], meta_global=Payload())
    with pytest.raises(DataError, match=r"batches.meta .* refusing to load __builtin__.print"):
        cifar10.read_cifar10({cifar10.CIFAR_ARCHIVE: archive})
    assert "must never run" not in capsys.readouterr().out


def test_truncated_cifar_archive_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10, "BATCH_ROWS", 2)
    archive = tmp_path / "cifar-10-python.tar.xz"
    _mini_cifar(archive, 2, [1, 2])
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(DataError, match="not a readable tar archive"):
        cifar10.read_cifar10({cifar10.CIFAR_ARCHIVE: archive})


def test_locate_prefers_the_official_archive_and_verifies_the_files(tmp_path, monkeypatch):
    root = tmp_path / "root"
    with pytest.raises(DataError, match="CIFAR-10 not found.*cifar-10-python.tar.gz.*cifar-10-python.tar.xz"):
        cifar10.locate(root, tmp_path / "cache")
    (root / "cifar10").mkdir(parents=True)
    payload = b"pretend this is the official archive"
    (root / cifar10.CIFAR_ARCHIVE).write_bytes(payload)
    monkeypatch.setitem(files.MANIFEST, cifar10.CIFAR_ARCHIVE, files.DataFile(
        cifar10.CIFAR_ARCHIVE, hashlib.sha256(payload).hexdigest(), files.CIFAR_URL, "test", "cifar10", len(payload)))
    assert list(cifar10.locate(root, tmp_path / "cache")) == [cifar10.CIFAR_ARCHIVE]
    need(cifar10.CIFAR_REPACK)
    found = cifar10.locate(ROOT, tmp_path / "cache")  # hashes the real repack (~1 s)
    assert {rel: sha for rel, (_, sha) in found.items()} == {
        cifar10.CIFAR_REPACK: files.MANIFEST[cifar10.CIFAR_REPACK].sha256}


def test_mnist_files_are_the_manifests():
    assert set(mnist.MNIST_FILES) <= set(files.MANIFEST)


@pytest.mark.slow
def test_load_dataset_reads_cifar10_from_its_cache(tmp_path):
    need(cifar10.CIFAR_REPACK)
    first = load_dataset("cifar10", ROOT, tmp_path)
    again = load_dataset("cifar10", ROOT, tmp_path)  # from the cache
    for ds in (first, again):
        assert ds.x_train.shape == (50000, 3, 32, 32) and ds.x_train.dtype == np.uint8
        assert np.array_equal(ds.y_test, first.y_test) and np.array_equal(ds.x_test, first.x_test)


def test_download_mnist_from_a_local_mirror(tmp_path, mirror):
    need(*mnist.MNIST_FILES)
    mirror({files.MANIFEST[rel].url: (ROOT / rel).read_bytes() for rel in mnist.MNIST_FILES})
    paths = download("mnist", tmp_path / "root")
    assert [p.read_bytes() for p in paths] == [(ROOT / rel).read_bytes() for rel in mnist.MNIST_FILES]
