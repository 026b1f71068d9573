"""Stored cells: each finished cell found again by everything that determines its numbers.

A cell's key hashes its spec (`sharens.suite.plan`), the identity of the data it read
(the files' sha256 and the reader's version) and the evaluation schema, so a
changed setting, data file, reader or evaluation means a new key: the cell is
recomputed, never silently reused. Each cell is a JSON record and, for a cell
that finished, an .npz of its per-row outcomes; both are written atomically,
the outcomes first, so a record on disk always has its outcomes beside it.

A table's report packs the outcomes of its cells into one `<table>.outcomes.npz`
beside `<table>.json`, keyed by cell key, so committed results carry them. The
pack leaves out a cell's float16 class probabilities (most of its bytes) once
its record holds every registered metric, since only a metric the cell did not
record is computed from them; such an entry carries a seal (the record's
checksum and that of the arrays kept) in place of the full checksum.

The JSON document names each cell's data identity by a digest and holds each
identity once (`as_written`, `read_document`): a table's cells share a handful,
and written out with every cell they were most of a document's bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from sharens.atomic import atomic_path, write_json
from sharens.model.evaluation import EVALUATION_SCHEMA, outcomes_sha256
from sharens.model.metrics import METRICS
from sharens.suite.plan import CellSpec

RESULTS = Path("results")


def results_folder(profile: str) -> Path:
    """Where the committed results of `profile` live, so a run there resumes them: results/ for full, else
    results/<profile>/."""
    return RESULTS if profile == "full" else RESULTS / profile

SEAL = "_seal"  # beside outcomes that left some of the record's arrays out: (record's sha256, the kept arrays')
IDENTITIES = "data_identities"  # in a written document: {digest: data identity}, the cells naming theirs by digest


def cell_key(spec: CellSpec, data_identity: dict) -> str:
    blob = json.dumps({"spec": spec.key_dict(), "data": data_identity, "evaluation_schema": EVALUATION_SCHEMA},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def file_name(label: str) -> str:
    """A row or pair label as it appears in a stored file's name: 'Deep CNN+SE' -> 'Deep-CNN-SE'."""
    return "".join(c if c.isalnum() else "-" for c in label).strip("-")


def _digest(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def as_written(doc: dict) -> dict:
    """A table document as `<table>.json` holds it: each cell's data identity held once, named by its digest."""
    identities, cells = {}, []
    for record in doc["cells"]:
        if isinstance(record.get("data"), dict):
            digest = _digest(record["data"])
            identities[digest] = record["data"]
            record = {**record, "data": digest}
        cells.append(record)
    return {**doc, "cells": cells, IDENTITIES: identities}


def read_document(path: Path) -> dict:
    """A table document as `document.build` made it, each cell with its data identity (older documents, which
    repeat it in every cell, read as they are). Raises OSError or ValueError."""
    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"{path} is not a table document")
    identities = doc.pop(IDENTITIES, {})
    cells = doc.get("cells", [])
    missing = {r["data"] for r in cells if isinstance(r.get("data"), str)} - identities.keys()
    if missing:
        raise ValueError(f"{path} names data identities it does not hold ({', '.join(sorted(missing))}); "
                         f"rebuild it with `python -m sharens report`")
    doc["cells"] = [{**r, "data": identities[r["data"]]} if isinstance(r.get("data"), str) else r for r in cells]
    return doc


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {name: z[name] for name in z.files}


class CellStore:
    """Finished cells of one table and profile, under `out/cells/<table>/<profile>/`."""

    def __init__(self, out: Path, table: str, profile: str):
        self.folder = Path(out) / "cells" / table / profile
        self.checkpoints = self.folder / "partial"  # cells in training: their state after the last saved epoch

    def throughput_files(self) -> list[Path]:
        """The pairs' stored step-time measurements (`sharens.judge.throughput`), one file each."""
        return sorted((self.folder / "throughput").glob("*.json"))

    def _checkpoint_files(self) -> dict[str, list[Path]]:
        """{cell key: its checkpoint files, one per member seed (`<key>.seed<seed>.pt`)}."""
        files: dict[str, list[Path]] = {}
        for path in self.checkpoints.glob("*.pt"):
            files.setdefault(path.name.split(".", 1)[0], []).append(path)
        return files

    def resumable(self, keys: list[str]) -> list[str]:
        """Those of `keys` whose training left a checkpoint (`sharens.train.checkpoint`): they resume, not restart."""
        saved = self._checkpoint_files()
        return [key for key in keys if key in saved]

    def discard_checkpoints(self, keys: list[str]) -> None:
        """Remove the checkpoints of `keys`: cells forced to run again start from their first epoch."""
        saved = self._checkpoint_files()
        for key in keys:
            for path in saved.get(key, []):
                path.unlink(missing_ok=True)

    def path(self, spec: CellSpec, key: str) -> Path:
        name = f"{spec.dataset}__{file_name(spec.row.label)}__{spec.preset or 'classic'}__s{spec.seed}__{key}"
        return self.folder / f"{name}.json"

    def load(self, spec: CellSpec, key: str) -> dict | None:
        """The stored record of the cell with this key, or None if absent or unreadable (it is then redone)."""
        path = self.path(spec, key)
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if record.get("key") != key or ("outcomes" in record and not path.with_suffix(".npz").is_file()):
            return None
        return record

    def save(self, spec: CellSpec, key: str, record: dict, outcomes: dict[str, np.ndarray]) -> dict:
        """Store a finished cell; returns the record as stored (with its key)."""
        record = {**record, "key": key}
        path = self.path(spec, key)
        if outcomes:
            _save_npz(path.with_suffix(".npz"), outcomes)
        write_json(path, record)
        return record

    def adopt(self, document: Path, wanted: dict[str, CellSpec]) -> list[dict]:
        """Copy into the store the cells of a committed table document (and its packed outcomes) whose key is
        `wanted` and not stored yet, so a fresh clone resumes from committed results. Returns the document's
        cells that carry no key (runs from before cells were keyed: they cannot be stored or resumed)."""
        try:
            doc = read_document(document)
        except (OSError, ValueError):
            return []
        packed = Outcomes.from_pack(Path(document).with_name(f"{doc.get('table')}.outcomes.npz"))
        for record in doc.get("cells", []):
            spec = wanted.get(record.get("key"))
            if spec is None or self.load(spec, record["key"]) is not None:
                continue
            outcomes = packed.get(record) if "outcomes" in record else {}
            if outcomes is None:  # its outcomes were not committed: the cell is recomputed
                continue
            self.save(spec, record["key"], record, _sealed(record, outcomes) if outcomes else outcomes)
        return [record for record in doc.get("cells", []) if "key" not in record]

    @staticmethod
    def older_cells(keyless: list[dict], finished: list[dict]) -> list[dict]:
        """The `keyless` committed cells of the rows (data set, model, preset) no `finished` cell belongs to: a
        report keeps showing them, as older cells, until any seed of their row is rerun. A row never mixes the
        two: its older cells ran other code (and often another budget), so the row shows the rerun seeds alone,
        reported as incomplete until the rest are in."""

        def row(record: dict) -> tuple:
            return record.get("dataset"), record.get("model"), record.get("preset")

        rerun = {row(record) for record in finished}
        return [record for record in keyless if row(record) not in rerun]

    def outcome_files(self) -> dict[str, Path]:
        """{cell key: its outcomes file}, from one listing of the store (file names end in `__<key>.npz`)."""
        return {path.stem.rsplit("__", 1)[-1]: path for path in self.folder.glob("*.npz")}


class Outcomes:
    """Per-row outcomes of a table's cells, looked up by record; checked against the record's checksum.

    Reads from the cell store of a run, or from the `<table>.outcomes.npz` a report packed.
    Records of older runs that kept no outcomes give None: the statistics that need them say so.
    """

    def __init__(self, arrays_by_key: dict[str, dict[str, np.ndarray]]):
        self.by_key = arrays_by_key

    @classmethod
    def from_store(cls, store: CellStore, records: list[dict]) -> Outcomes:
        files = store.outcome_files()
        return cls({r["key"]: _load_npz(files[r["key"]]) for r in records if r.get("outcomes") and r["key"] in files})

    @classmethod
    def from_pack(cls, path: Path) -> Outcomes:
        """The outcomes packed beside a table's JSON (none if the file is absent: an older run)."""
        if not path.is_file():
            return cls({})
        by_key: dict[str, dict[str, np.ndarray]] = {}
        for name, array in _load_npz(path).items():
            key, _, field = name.partition("/")
            by_key.setdefault(key, {})[field] = array
        return cls(by_key)

    def get(self, record: dict) -> dict[str, np.ndarray] | None:
        found = self.by_key.get(record.get("key"))
        if found is None or "outcomes" not in record:
            return None
        arrays = {name: a for name, a in found.items() if name != SEAL}
        expected, actual = record["outcomes"]["sha256"], outcomes_sha256(arrays)
        if (SEAL in found and found[SEAL].tolist() != [expected, actual]) or (SEAL not in found and actual != expected):
            raise ValueError(f"the stored outcomes of cell {record['key']} ({record['model']}, seed "
                             f"{record['seed']}) do not match their checksum; rerun the cell with --force")
        return arrays

    def pack(self, records: list[dict], path: Path) -> Path | None:
        """Write the outcomes of `records` into one .npz (keyed `<cell key>/<array>`); None if they have none.
        A cell's probabilities go in only if its record lacks a registered metric (computed from them)."""
        arrays = {f"{r['key']}/{name}": a for r in records if (found := self.get(r))
                  for name, a in _sealed(r, _needed(r, found)).items()}
        if not arrays:
            path.unlink(missing_ok=True)
            return None
        _save_npz(path, arrays)
        return path


def _needed(record: dict, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays a report may still need: the probabilities only while the record lacks a registered metric."""
    recorded = record.get("metrics") or {}
    if all(recorded.get(name) is not None for name in METRICS):
        return {name: a for name, a in arrays.items() if name != "probabilities"}
    return arrays


def _sealed(record: dict, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`arrays` as kept on disk: sealed when some of the record's arrays are left out, so a reader can tell
    that these are the cell's (its record's checksum) and intact (their own)."""
    if set(arrays) == set(record["outcomes"]["arrays"]):
        return arrays
    return {**arrays, SEAL: np.array([record["outcomes"]["sha256"], outcomes_sha256(arrays)])}
