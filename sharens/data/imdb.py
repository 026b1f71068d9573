"""IMDB movie reviews (Maas et al. 2011): 25,000 train / 25,000 test, label from the pos/neg folder.

The reviews come from the official `aclImdb_v1.tar.gz`, from the suite's `.tar.xz`
repack of it, or from an extracted `aclImdb/` folder. No torchtext: a regex
tokenizer and a vocabulary built on train only turn each review into 500 token
ids (the default input, for the embedding models); a scikit-learn tf-idf over
5,000 terms, also fitted on train only, is the `tfidf` view (the gcForest
protocol's input for non-sequence models).
"""

from __future__ import annotations

import hashlib
import re
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from sharens.data import files
from sharens.data.files import DataError
from sharens.data.splits import split_result

OFFICIAL = "imdb/aclImdb_v1.tar.gz"
REPACK = "imdb/aclImdb_v1_labeled.tar.xz"
FOLDER = "imdb/aclImdb"
CLASSES = ("neg", "pos")
SPLITS = ("train", "test")
REVIEWS_PER_FOLDER = 12_500

MAX_TOKENS = 500  # the paper's sequence length
VOCAB_SIZE = 20_000  # ids: 0 padding, 1 unknown word, 2.. the most frequent train words
PAD, UNKNOWN = 0, 1
TFIDF_TERMS = 5_000  # the gcForest protocol

_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_MARKUP = re.compile(r"<[^>]+>")  # the reviews contain <br /> tags


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens, HTML tags removed ("Don't <br />stop!" -> ["don't", "stop"])."""
    return _TOKEN.findall(_MARKUP.sub(" ", text.lower()))


def locate(root: Path, cache: Path) -> dict[str, tuple[Path, str]]:
    """The first source present: official archive, repack, extracted folder (in that order)."""
    for relpath in (OFFICIAL, REPACK):
        if (root / relpath).is_file():
            return {relpath: (files.verify(relpath, root, cache), files.MANIFEST[relpath].sha256)}
    folder = root / FOLDER
    if (folder / "train").is_dir():
        return {FOLDER: (folder, _folder_fingerprint(folder))}
    raise files.DataMissing(
        f"IMDB not found: looked for {root / OFFICIAL}, {root / REPACK} and the folder {folder}. "
        f"Get it with `python -m sharens download imdb --data-root {root}` or by hand from "
        f"{files.IMDB_URL}. The data root comes from --data-root or SHARENS_DATA; it is now {root}.")


def _folder_fingerprint(folder: Path) -> str:
    """Names and sizes of the review files (an extracted folder has no published checksum)."""
    h = hashlib.sha256()
    for path in sorted(folder.glob("*/*/*.txt")):
        h.update(f"{path.relative_to(folder)}\0{path.stat().st_size}\n".encode())
    return h.hexdigest()


def _reviews(source: Path) -> Iterator[tuple[str, str, int, str]]:
    """(split, label, review id, text) of every labelled review in an archive or folder."""
    if source.is_dir():
        for path in source.glob("*/*/*.txt"):
            match = _MEMBER.search(f"aclImdb/{path.relative_to(source).as_posix()}")
            if match:
                yield match[1], match[2], int(match[3]), path.read_text(encoding="utf-8")
        return
    with tarfile.open(source, "r:*") as archive:
        for member in archive:
            match = _MEMBER.search(member.name)
            if match and member.isfile():
                text = archive.extractfile(member).read().decode("utf-8")
                yield match[1], match[2], int(match[3]), text


def build_vocabulary(documents: list[list[str]], size: int = VOCAB_SIZE) -> dict[str, int]:
    """The `size - 2` most frequent train words (ties alphabetical) -> ids 2, 3, ..."""
    counts = Counter(token for doc in documents for token in doc)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: size - 2]
    return {word: i for i, (word, _) in enumerate(ranked, start=2)}


def encode(documents: list[list[str]], vocabulary: dict[str, int], length: int = MAX_TOKENS) -> np.ndarray:
    """Token ids, (documents, length) int32, Keras-style: keep the last `length` tokens, pad in front.

    Front padding leaves the end of the review next to an LSTM's final state.
    """
    out = np.full((len(documents), length), PAD, dtype=np.int32)
    for row, doc in enumerate(documents):
        ids = [vocabulary.get(token, UNKNOWN) for token in doc[-length:]]
        if ids:
            out[row, length - len(ids):] = ids
    return out


def read_imdb(paths: dict[str, Path], cache: Path | None = None) -> dict:
    (source,) = paths.values()
    parts = {split: [] for split in SPLITS}
    for split, label, review_id, text in _reviews(source):
        parts[split].append((CLASSES.index(label), review_id, text))
    for split, rows in parts.items():
        rows.sort()  # neg then pos, by review id: independent of archive order
        found = Counter(CLASSES[label] for label, _, _ in rows)
        if found != {c: REVIEWS_PER_FOLDER for c in CLASSES}:
            raise DataError(f"IMDB {split} in {source}: expected {REVIEWS_PER_FOLDER} reviews per class, "
                            f"found {dict(found)}; the archive or folder is incomplete")
    docs = {split: [tokenize(text) for _, _, text in rows] for split, rows in parts.items()}
    y = {split: np.array([label for label, _, _ in rows]) for split, rows in parts.items()}
    vocabulary = build_vocabulary(docs["train"])
    tokens = {split: encode(d, vocabulary) for split, d in docs.items()}
    tfidf = TfidfVectorizer(analyzer=lambda doc: doc, max_features=TFIDF_TERMS, dtype=np.float32)
    tfidf_train = tfidf.fit_transform(docs["train"]).toarray()
    tfidf_test = tfidf.transform(docs["test"]).toarray()
    lengths = np.array([len(d) for d in docs["train"]])
    info = {
        "split": {"rule": "official: aclImdb/train and aclImdb/test (train/unsup unused); rows ordered "
                          "neg then pos, by review id"},
        "source": str(Path(*source.parts[-2:])),
        "preprocessing": (
            f"lower-case, HTML tags removed, regex word tokens {_TOKEN.pattern!r}; vocabulary = the "
            f"{VOCAB_SIZE - 2} most frequent train tokens (id {PAD} padding, {UNKNOWN} unknown); the last "
            f"{MAX_TOKENS} tokens kept, zero-padded in front (Keras pad_sequences defaults). View `tfidf`: "
            f"sklearn TfidfVectorizer(max_features={TFIDF_TERMS}) on the same tokens, fitted on train"),
        "vocab_size": VOCAB_SIZE,
        "max_tokens": MAX_TOKENS,
        "train_tokens_per_review": {"median": int(np.median(lengths)), "max": int(lengths.max()),
                                    "truncated_share": float(np.mean(lengths > MAX_TOKENS))},
        "unknown_token_share_test": float(np.mean(tokens["test"][tokens["test"] != PAD] == UNKNOWN)),
        "views": {"tfidf": f"{TFIDF_TERMS} tf-idf terms (dense float32)"},
    }
    result = split_result(tokens["train"], y["train"], tokens["test"], y["test"], CLASSES, info)
    result["views"] = {"tfidf": (tfidf_train, tfidf_test)}
    return result
