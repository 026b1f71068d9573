"""IMDB and GTZAN: tokenizer, vocabulary, readers on the real files, the per-clip MFCC cache, bad clips, downloads."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from sharens.data import DataError, download, files, gtzan, imdb, load_dataset
from sharens.model.backbones import build_backbone
from sharens.model.ensemble import SharingEnsemble

REPO = Path(__file__).resolve().parents[2]
ROOT = Path(os.environ.get("SHARENS_DATA") or REPO.parent / "shared" / "data")
GTZAN_CLIPS = sorted((ROOT / "gtzan" / "genres").glob("*/*.*"))


def need(relpath: str) -> Path:
    if not (ROOT / relpath).exists():
        pytest.skip(f"real data {relpath} not found under {ROOT} (set SHARENS_DATA)")
    return ROOT


@pytest.fixture
def cache() -> Path:
    """The test session's shared cache (conftest), so IMDB is parsed once for all test modules."""
    return Path(os.environ["SHARENS_CACHE"])


# --- IMDB -------------------------------------------------------------------------------------

def test_tokenizer_lowercases_and_drops_markup():
    assert imdb.tokenize("Don't <br />STOP, it's 10/10!") == ["don't", "stop", "it's", "10", "10"]


def test_vocabulary_ranks_by_count_then_alphabet_and_reserves_pad_and_unknown():
    vocab = imdb.build_vocabulary([["b", "a", "c"], ["b", "a"], ["d"]], size=4)
    assert vocab == {"a": 2, "b": 3}


def test_encode_keeps_the_last_tokens_and_pads_in_front():
    vocab = {"good": 2, "film": 3}
    out = imdb.encode([["a", "good", "film"], ["good"] * 5, []], vocab, length=4)
    assert out.tolist() == [[0, 1, 2, 3], [2, 2, 2, 2], [0, 0, 0, 0]]
    assert out.dtype == np.int32


@pytest.mark.slow
def test_imdb_reader_on_the_real_archive(cache):
    ds = load_dataset("imdb", need(imdb.REPACK), cache)
    assert ds.x_train.shape == ds.x_test.shape == (25000, imdb.MAX_TOKENS)
    assert 0 <= ds.x_train.min() and ds.x_train.max() < imdb.VOCAB_SIZE
    assert np.bincount(ds.y_train).tolist() == np.bincount(ds.y_test).tolist() == [12500, 12500]
    assert ds.classes == ("neg", "pos")
    tfidf_train, tfidf_test = ds.inputs("tfidf")
    assert tfidf_train.shape == tfidf_test.shape == (25000, imdb.TFIDF_TERMS)
    assert np.allclose(np.linalg.norm(tfidf_train[:100], axis=1), 1, atol=1e-5)  # l2-normalized rows
    # short reviews are padded in front, so the last position always holds a word
    assert (ds.x_train[:, -1] != imdb.PAD).all()
    assert ds.info["source"] == imdb.REPACK and ds.info["files"][imdb.REPACK]["sha256"]
    with pytest.raises(ValueError, match="no input view 'mfcc'"):
        ds.inputs("mfcc")


def _mini_aclimdb(folder: Path, per_class: int) -> None:
    for split in imdb.SPLITS:
        for label in imdb.CLASSES:
            (folder / "aclImdb" / split / label).mkdir(parents=True)
            for i in range(per_class):
                text = f"A {'great' if label == 'pos' else 'bad'} film number {i}.<br />Seen in {split}."
                (folder / "aclImdb" / split / label / f"{i}_{7 if label == 'pos' else 2}.txt").write_text(text)


def test_archive_and_folder_give_the_same_reviews(tmp_path, monkeypatch):
    monkeypatch.setattr(imdb, "REVIEWS_PER_FOLDER", 3)
    _mini_aclimdb(tmp_path, 3)
    archive = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "aclImdb", arcname="aclImdb")
    from_folder = imdb.read_imdb({imdb.FOLDER: tmp_path / "aclImdb"})
    from_archive = imdb.read_imdb({imdb.OFFICIAL: archive})
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(from_folder[key], from_archive[key])
    assert from_folder["y_train"].tolist() == [0, 0, 0, 1, 1, 1]


def test_incomplete_imdb_is_a_clear_error(tmp_path):
    _mini_aclimdb(tmp_path, 3)
    with pytest.raises(DataError, match="expected 12500 reviews per class, found"):
        imdb.read_imdb({imdb.FOLDER: tmp_path / "aclImdb"})


def test_missing_imdb_names_every_place_it_looked(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset("imdb", tmp_path, tmp_path / "cache")
    message = str(err.value)
    for relpath in (imdb.OFFICIAL, imdb.REPACK, imdb.FOLDER):
        assert str(tmp_path / relpath) in message
    assert "python -m sharens download imdb" in message


def test_download_imdb_checks_the_sha256(tmp_path, mirror, monkeypatch):
    payload = b"pretend this is aclImdb_v1.tar.gz"
    mirror({files.IMDB_URL: payload})
    entry = files.MANIFEST[imdb.OFFICIAL]
    monkeypatch.setitem(files.MANIFEST, imdb.OFFICIAL,
                        dataclasses.replace(entry, sha256=hashlib.sha256(payload).hexdigest()))
    (path,) = download("imdb", tmp_path / "root")
    assert path == tmp_path / "root" / imdb.OFFICIAL and path.read_bytes() == payload
    mirror.place(files.IMDB_URL, b"tampered")
    path.unlink()
    with pytest.raises(DataError, match="aclImdb_v1.tar.gz"):
        download("imdb", tmp_path / "root")
    assert not path.exists()


# --- GTZAN ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_gtzan_reader_uses_every_clip_present(cache):
    root = need("gtzan/genres")
    ds = load_dataset("gtzan", root, cache)
    n = len(GTZAN_CLIPS)
    assert len(ds.y_train) + len(ds.y_test) == n == ds.info["clips_used"]
    assert ds.x_train.shape[1:] == (1280, 13) and ds.x_train.dtype == np.float32
    assert set(ds.y_test.tolist()) == set(range(10))  # every genre is tested
    assert ds.inputs("summary")[0].shape == (len(ds.y_train), 26)
    assert np.isfinite(ds.x_train).all() and np.isfinite(ds.x_test).all()
    assert ds.info["mfcc"]["n_mfcc"] == 13 and ds.info["mfcc"]["librosa_version"]
    assert ds.info["skipped"] == {}
    assert all(label.endswith(".wav") for label in ds.info["unverified_wav_conversions"])
    assert ds.info["extraction"]["computed"] + ds.info["extraction"]["from_cache"] == n


def test_fault_filtered_partition_is_kereliuks_and_keeps_its_sides_apart(cache):
    part = gtzan.filtered_partition()
    sizes = {side: sum(1 for p in part.values() if p == side) for side in ("train", "valid", "test")}
    assert sizes == {"train": 443, "valid": 197, "test": 290}  # Kereliuk et al. 2015, Table 1
    assert {stem.split(".")[0] for stem in part} == set(gtzan.GENRES)
    root = need("gtzan/genres")
    ds = load_dataset("gtzan_filtered", root, cache)
    split = ds.info["split"]
    stems = {Path(c).name.rsplit(".", 1)[0] for c in split["test_clips"]}
    assert stems and all(part[s] == "test" for s in stems)
    assert len(ds.y_train) + len(ds.y_test) + len(split["left_out"]) == len(GTZAN_CLIPS)
    assert all(Path(c).name.rsplit(".", 1)[0] not in part for c in split["left_out"])
    assert len(ds.y_test) == sum(part.get(Path(c).name.rsplit(".", 1)[0]) == "test" for c in map(str, GTZAN_CLIPS))


def test_split_by_clip_is_700_300_on_the_full_set_and_tests_every_genre_on_a_small_one():
    assert gtzan.n_test_clips(np.repeat(np.arange(10), 100)) == 300
    assert gtzan.n_test_clips(np.repeat(np.arange(10), 2)) == 10
    assert gtzan.n_test_clips(np.repeat(np.arange(10), 5)) == 15


def test_mfcc_matrix_is_cropped_to_1280_frames():
    clip = next(p for p in GTZAN_CLIPS if p.suffix == ".au") if GTZAN_CLIPS else pytest.skip("no GTZAN")
    m = gtzan.mfcc(str(clip), gtzan.MfccParams.current())
    assert m.shape == (1280, 13) and m.dtype == np.float32 and np.abs(m[-1]).sum() > 0


@pytest.mark.slow
def test_features_are_cached_per_clip_and_bad_clips_are_skipped_not_cached(tmp_path, monkeypatch):
    real = need("gtzan/genres")
    root = tmp_path / "root"
    shutil.copytree(real / "gtzan", root / "gtzan")
    blues = root / "gtzan" / "genres" / "blues"
    corrupt = bytearray((blues / "blues.00000.au").read_bytes())
    corrupt[5000] ^= 0xFF
    (blues / "blues.00002.au").write_bytes(bytes(corrupt))  # a real clip name, wrong bytes
    (root / "gtzan" / "genres" / "rock" / "rock.00009.wav").write_bytes(b"RIFF not really a wave file")
    clip_cache = tmp_path / "cache"
    ds = load_dataset("gtzan", root, clip_cache)
    skipped = ds.info["skipped"]
    assert set(skipped) == {"gtzan/genres/blues/blues.00002.au", "gtzan/genres/rock/rock.00009.wav"}
    assert "checksum mismatch" in skipped["gtzan/genres/blues/blues.00002.au"]
    assert "unreadable" in skipped["gtzan/genres/rock/rock.00009.wav"]
    assert ds.info["clips_present"] == len(GTZAN_CLIPS) + 2 and ds.info["clips_used"] == len(GTZAN_CLIPS)
    (feature_folder,) = clip_cache.glob("gtzan-mfcc-*")
    assert len(list(feature_folder.glob("*.npy"))) == len(GTZAN_CLIPS)  # nothing cached for bad clips
    assert not list(feature_folder.glob("*.tmp*"))

    # without the unreadable clip the data set is rebuilt, from every clip's cached features alone
    (root / "gtzan" / "genres" / "rock" / "rock.00009.wav").unlink()
    monkeypatch.setattr(gtzan, "_extract_to_cache", None)  # the process pool would fail on it
    again = load_dataset("gtzan", root, clip_cache)
    assert again.info["extraction"]["from_cache"] == len(GTZAN_CLIPS)
    assert again.info["cache_key"] != ds.info["cache_key"]
    np.testing.assert_array_equal(again.x_train, ds.x_train)


def test_missing_gtzan_says_where_and_how(tmp_path):
    with pytest.raises(DataError, match="no GTZAN clips found.*python -m sharens download gtzan"):
        load_dataset("gtzan", tmp_path, tmp_path / "cache")


def test_download_gtzan_keeps_only_clips_that_match_the_original(tmp_path, mirror, serve):
    """The original host first, then a mirror; .au clips by their published sha256, .wav conversions (as the
    mirrors serve) by format and sample count; anything else is refused."""
    au = [p for p in GTZAN_CLIPS if p.suffix == ".au"][:2]
    wav = [p for p in GTZAN_CLIPS if p.suffix == ".wav"][:1]
    if len(au) < 2 or not wav:
        pytest.skip("needs two original GTZAN .au clips and one .wav conversion")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for clip in [*au, *wav]:
            tar.add(clip, arcname=f"genres/{clip.parent.name}/{clip.name}")
        for name, payload in ((f"{au[0].parent.name}.00003.au", au[0].read_bytes()[:-10]),  # wrong sha256
                              (f"{wav[0].parent.name}.00004.wav", wav[0].read_bytes()[:-20000])):  # too short
            info = tarfile.TarInfo(f"genres/{name.split('.')[0]}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    mirror({gtzan.MIRRORS[0]: archive.getvalue()})  # the original host's path is not on this server
    written = download("gtzan", tmp_path / "root")
    assert sorted(p.name for p in written) == sorted(p.name for p in [*au, *wav])
    for path in written:
        assert path.read_bytes() == (ROOT / "gtzan" / "genres" / path.parent.name / path.name).read_bytes()
    assert [path for path, _ in serve.servers[-1].requests] == ["/sound/genres.tar.gz",
                                                                 "/datasets/marsyas/gtzan/resolve/main/data/genres.tar.gz"]


# --- backbones for these tables ---------------------------------------------------------------

def test_text_cnn_taps_and_heads():
    net = build_backbone("convnet", (500,), dims=1, vocab_size=100, embed_dim=8,
                         layers=((4, 1), (4, 2), (8, 1), (8, 2)))
    assert net.tap_features == {"L2": 4 * 250, "L4": 8 * 125}
    model = SharingEnsemble(net, 2, heads_per_tap=5)
    assert model(torch.randint(0, 100, (3, 500))).shape == (3, 10, 2)


def test_mfcc_cnn_reads_a_matrix_as_one_channel():
    net = build_backbone("convnet", (1280, 13), dims=2, layers=((4, 1), (4, 2)))
    assert net.tap_features == {"L2": 4 * 640 * 7}
    taps = net(torch.randn(2, 1280, 13))
    assert taps["L2"].shape == (2, 4, 640, 7)


def test_table2_cnn_shapes_match_the_paper():
    layers = ((64, 1), (64, 2), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (256, 2))
    net = build_backbone("convnet", (3, 32, 32), dims=2, layers=layers)
    assert net.tap_features == {"L2": 16384, "L4": 8192, "L6": 4096, "L8": 1024}


def test_token_lstm_reads_the_last_state():
    net = build_backbone("deep_lstm", (50,), vocab_size=30, embed_dim=6, hidden=5, layers=2, readout="last")
    taps = net(torch.randint(0, 30, (3, 50)))
    assert net.tap_features == {"lstm1": 5, "lstm2": 5}
    assert all(t.shape == (3, 5) for t in taps.values())
    with pytest.raises(ValueError, match="readout"):
        build_backbone("deep_lstm", (50,), vocab_size=30, hidden=5, layers=1, readout="mean")
