"""The data layer on the real files: shapes, splits, standardization, caching, errors, offline download.

The data root is $SHARENS_DATA, else ../shared/data next to the repository; tests
that need a folder of it skip when it is absent. Nothing here touches the network
(downloads go to a local HTTP server) or the user's cache (SHARENS_CACHE is a tmp dir).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

import sharens.data as data
from sharens.data import DataError, Dataset, files, load_dataset

REPO = Path(__file__).resolve().parents[2]
ROOT = Path(os.environ.get("SHARENS_DATA") or REPO.parent / "shared" / "data")
FOLDER = {"letter": "uci", "adult": "uci", "yeast": "uci", "semg": "semg"}

# name: (n_train, n_test, n_features, n_classes)
SHAPES = {"letter": (16000, 4000, 16, 26), "adult": (32561, 16281, 108, 2),
          "yeast": (1038, 446, 8, 10), "semg": (1440, 360, 3000, 6)}


def need(name: str) -> Path:
    """The real data root, or skip: these tests need the official files."""
    if not all((ROOT / rel).is_file() for rel in data.SOURCES[name].files):
        pytest.skip(f"real {name} files not found under {ROOT} (set SHARENS_DATA to a data root "
                    f"holding {FOLDER[name]}/)")
    return ROOT


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Keep every test off ~/.cache/sharens and off any proxy."""
    monkeypatch.setenv("SHARENS_CACHE", str(tmp_path / "env-cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One cache for the module, so each data set is parsed once."""
    return tmp_path_factory.mktemp("cache")


def arrays_equal(a: Dataset, b: Dataset) -> bool:
    return (all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("x_train", "y_train", "x_test", "y_test"))
            and a.classes == b.classes and a.info == b.info)


@pytest.mark.parametrize("name", SHAPES)
def test_shapes_types_and_info(name, shared_cache):
    ds = load_dataset(name, need(name), shared_cache)
    n_train, n_test, n_features, n_classes = SHAPES[name]
    assert ds.name == name
    assert ds.x_train.shape == (n_train, n_features) and ds.x_test.shape == (n_test, n_features)
    assert ds.x_train.dtype == ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == ds.y_test.dtype == np.int64
    assert ds.y_train.shape == (n_train,) and ds.y_test.shape == (n_test,)
    assert len(ds.classes) == n_classes
    assert set(np.unique(ds.y_train)) == set(range(n_classes))
    assert ds.y_test.min() >= 0 and ds.y_test.max() < n_classes
    assert np.isfinite(ds.x_train).all() and np.isfinite(ds.x_test).all()
    info = json.loads(json.dumps(ds.info))  # JSON-serializable
    assert info["n_features"] == n_features
    assert info["split"]["rule"]
    assert {rel: f["sha256"] for rel, f in info["files"].items()} == {
        rel: files.MANIFEST[rel].sha256 for rel in data.SOURCES[name].files}


@pytest.mark.parametrize("name", SHAPES)
def test_train_columns_standardized(name, shared_cache):
    ds = load_dataset(name, need(name), shared_cache)
    x = ds.x_train.astype(np.float64)
    if name == "adult":  # numeric columns standardized; the one-hot groups stay 0/1, one hot per group
        numeric = len(ds.info["numeric_columns"])
        x, onehot = x[:, :numeric], x[:, numeric:]
        assert set(np.unique(onehot)) == {0.0, 1.0}
        assert (onehot.sum(axis=1) == len(ds.info["categories_per_column"])).all()
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=0), 1, atol=1e-3)
    assert abs(ds.x_test.mean()) < 0.5  # test uses train statistics, so only roughly centred


def test_letter_classes_and_split(shared_cache):
    ds = load_dataset("letter", need("letter"), shared_cache)
    assert ds.classes == tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    first = (ROOT / "uci/letter-recognition.data").read_text().split("\n", 1)[0]
    assert ds.classes[ds.y_train[0]] == first[0]  # train is the head of the file, in order
    assert np.bincount(ds.y_test, minlength=26).min() > 0


def test_adult_labels_and_missing(shared_cache):
    ds = load_dataset("adult", need("adult"), shared_cache)
    assert ds.classes == ("<=50K", ">50K")
    assert int((ds.y_train == 1).sum()) == 7841 and int((ds.y_test == 1).sum()) == 3846
    missing = ds.info["missing"]
    assert missing["train_rows_with_missing"] == 2399 and missing["test_rows_with_missing"] == 1221
    assert set(missing["per_column_train_test"]) == {"workclass", "occupation", "native-country"}


def test_yeast_classes_and_stratified_split(shared_cache):
    ds = load_dataset("yeast", need("yeast"), shared_cache)
    assert ds.classes == ("CYT", "ERL", "EXC", "ME1", "ME2", "ME3", "MIT", "NUC", "POX", "VAC")
    total = np.bincount(ds.y_train, minlength=10) + np.bincount(ds.y_test, minlength=10)
    assert total.tolist() == [463, 5, 35, 44, 51, 163, 244, 429, 20, 30]
    assert np.abs(np.bincount(ds.y_test, minlength=10) - total * 446 / 1484).max() <= 1
    assert ds.info["split"]["seed"] == 0


def test_semg_classes_and_split(shared_cache):
    ds = load_dataset("semg", need("semg"), shared_cache)
    assert ds.classes == ("cyl", "hook", "tip", "palm", "spher", "lat")
    assert np.bincount(ds.y_train).tolist() == [240] * 6
    assert np.bincount(ds.y_test).tolist() == [60] * 6
    assert ds.info["split"]["seed"] == 0


# The test rows of the random splits: pinned so a changed sklearn shuffle (different
# test rows, results no longer comparable with older runs) is caught, not silently used.
SPLIT_HASHES = {"yeast": "270e21468ea813e953937bea857c1ee095542e57c153e1cd2490f07876b58f8f",
                "semg": "64bcf8d4a25ae30d4aaefd9f0dcb008c2976c3d05c0bfc52b01b95a6e1c0698c"}


@pytest.mark.parametrize("name", ["yeast", "semg"])
def test_split_is_deterministic(name, tmp_path, shared_cache):
    first = load_dataset(name, need(name), tmp_path / "a")
    second = load_dataset(name, need(name), tmp_path / "b")  # separate caches: parsed twice
    assert arrays_equal(first, second)
    assert arrays_equal(first, load_dataset(name, ROOT, shared_cache))
    assert first.info["split"]["test_rows_sha256"] == SPLIT_HASHES[name], "the fixed split changed"


def test_cache_is_reused_without_parsing_or_hashing(tmp_path, monkeypatch):
    root = need("yeast")
    first = load_dataset("yeast", root, tmp_path)
    cached = list(tmp_path.glob("yeast-*.npz"))
    assert [p.name for p in cached] == [f"yeast-{first.info['cache_key']}.npz"]

    def boom(*args):
        raise AssertionError("should have come from the cache")

    monkeypatch.setitem(data.SOURCES, "yeast", dataclasses.replace(data.SOURCES["yeast"], read=boom))
    monkeypatch.setattr(files, "_sha256", boom)  # the verify stamp avoids re-hashing too
    assert arrays_equal(first, load_dataset("yeast", root, tmp_path))
    # another cache dir has no stamp, so the file is hashed again there
    with pytest.raises(AssertionError, match="cache"):
        load_dataset("yeast", root, tmp_path / "other")


def test_corrupt_cache_is_rebuilt(tmp_path):
    root = need("yeast")
    first = load_dataset("yeast", root, tmp_path)
    (npz,) = tmp_path.glob("yeast-*.npz")
    npz.write_bytes(b"not a zip file")
    assert arrays_equal(first, load_dataset("yeast", root, tmp_path))
    assert np.load(npz)["x_train"].shape == (1038, 8)
    assert not list(tmp_path.glob(".*"))  # no temp files left behind


def test_root_is_only_read(tmp_path):
    root = tmp_path / "root"
    (root / "uci").mkdir(parents=True)
    shutil.copy(need("yeast") / "uci/yeast.data", root / "uci")
    for p in (root / "uci", root):
        p.chmod(0o555)
    try:
        load_dataset("yeast", root, tmp_path / "cache")
        assert sorted(p.name for p in root.rglob("*")) == ["uci", "yeast.data"]
    finally:
        for p in (root, root / "uci"):
            p.chmod(0o755)


def test_missing_file_says_where_and_how(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("adult", tmp_path, tmp_path / "cache")
    message = str(err.value)
    assert str(tmp_path / "uci" / "adult.data") in message
    assert "python -m sharens download adult" in message and "SHARENS_DATA" in message
    assert files.MANIFEST["uci/adult.data"].url in message


def test_corrupt_file_reports_both_hashes(tmp_path):
    (tmp_path / "uci").mkdir()
    target = tmp_path / "uci" / "yeast.data"
    content = bytearray((need("yeast") / "uci/yeast.data").read_bytes())
    content[100] ^= 1
    target.write_bytes(bytes(content))
    with pytest.raises(DataError) as err:
        load_dataset("yeast", tmp_path, tmp_path / "cache")
    message = str(err.value)
    assert files.MANIFEST["uci/yeast.data"].sha256 in message
    assert hashlib.sha256(content).hexdigest() in message
    assert str(target) in message and "download" in message


def test_unknown_dataset():
    with pytest.raises(DataError, match="letter, adult, yeast, semg, imdb, gtzan, gtzan_filtered, mnist, cifar10"):
        load_dataset("svhn")
    with pytest.raises(DataError, match="known"):
        data.download("svhn", "unused")


def test_data_root_and_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHARENS_DATA", raising=False)
    assert data.data_root() == tmp_path / "datasets"
    monkeypatch.setenv("SHARENS_DATA", str(tmp_path / "env"))
    assert data.data_root() == tmp_path / "env"
    assert data.data_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.setenv("SHARENS_CACHE", str(tmp_path / "c1"))
    assert data.cache_dir() == tmp_path / "c1" and (tmp_path / "c1").is_dir()
    assert data.cache_dir(tmp_path / "c2") == tmp_path / "c2" and (tmp_path / "c2").is_dir()


# --- downloads, from a local HTTP server that serves the official layout ($SHARENS_MIRROR) -------------

YEAST = files.MANIFEST["uci/yeast.data"]


def test_download_uci_file(tmp_path, mirror, shared_cache, monkeypatch):
    real = need("yeast")
    mirror({YEAST.url: (real / "uci/yeast.data").read_bytes()})
    root = tmp_path / "root"
    paths = data.download("yeast", root)
    assert paths == [root / "uci" / "yeast.data"] and not list(root.rglob("*.part"))
    assert files.verify("uci/yeast.data", root) == paths[0]
    assert arrays_equal(load_dataset("yeast", root, tmp_path / "cache"), load_dataset("yeast", real, shared_cache))
    monkeypatch.setenv(files.MIRROR_VARIABLE, "http://127.0.0.1:9")
    data.download("yeast", root)  # already there: no request made


def test_a_wrong_download_is_refused_fetched_again_and_never_kept(tmp_path, mirror, serve):
    mirror({YEAST.url: b"not the yeast data\n"})
    root = tmp_path / "root"
    with pytest.raises(DataError, match="yeast.data.*not the published.*SHARENS_MIRROR"):
        data.download("yeast", root)
    assert not (root / "uci" / "yeast.data").exists() and not list(root.rglob("*.part"))
    assert len(serve.servers[-1].requests) == 2  # refused, fetched again, refused again
    mirror.place(YEAST.url, need("yeast").joinpath("uci/yeast.data").read_bytes())
    assert data.download("yeast", root) == [root / "uci" / "yeast.data"]


def test_an_interrupted_download_resumes_from_its_partial_file(tmp_path, mirror, serve):
    payload = need("yeast").joinpath("uci/yeast.data").read_bytes()
    mirror({YEAST.url: payload})
    part = tmp_path / "root" / "uci" / "yeast.data.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(payload[:1000])  # what a killed download left
    (path,) = data.download("yeast", tmp_path / "root")
    assert path.read_bytes() == payload and not part.exists()
    assert serve.servers[-1].requests == [("/ml/machine-learning-databases/yeast/yeast.data", "bytes=1000-")]


def test_offline_the_error_names_the_file_and_its_url(tmp_path, monkeypatch):
    monkeypatch.setenv(files.MIRROR_VARIABLE, "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(DataError, match="could not download yeast.data.*yeast/yeast.data.*by hand"):
        data.download("yeast", tmp_path / "root")


def _semg_zip(replace: dict[str, bytes] | None = None) -> bytes:
    real, buffer = need("semg"), io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("Database 1/readme.txt", "sEMG database 1")
        for rel in data.SOURCES["semg"].files:
            name = rel.split("/")[1]
            zf.writestr(f"Database 1/{name}", (replace or {}).get(name) or (real / rel).read_bytes())
    return buffer.getvalue()


def test_download_semg_zip(tmp_path, mirror, shared_cache):
    mirror({files.SEMG_ZIP_URL: _semg_zip()})
    root = tmp_path / "root"
    paths = data.download("semg", root)
    assert paths == [root / rel for rel in data.SOURCES["semg"].files]
    assert sorted(p.name for p in (root / "semg").iterdir()) == sorted(p.name for p in paths)  # nothing else
    assert arrays_equal(load_dataset("semg", root, tmp_path / "cache"),
                        load_dataset("semg", need("semg"), shared_cache))


def test_download_semg_zip_with_wrong_file(tmp_path, mirror):
    mirror({files.SEMG_ZIP_URL: _semg_zip(replace={"male_2.mat": b"MATLAB but not really"})})
    with pytest.raises(DataError, match="male_2.mat.*expected sha256"):
        data.download("semg", tmp_path / "root")
    assert not (tmp_path / "root" / "semg" / "male_2.mat").exists()
