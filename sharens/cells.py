"""A cell is one (data set, model row, preset, seed) of a table: the unit of work and of resume.

Each finished cell is written atomically to its own JSON file, named after what
determines its result (a hash of its configuration), so a killed run loses at
most the cell in progress and a changed setting never reuses a stale number.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

KINDS = ("baseline", "se", "se_weighted", "independent", "classic")


@dataclass(frozen=True)
class Cell:
    table: str
    dataset: str
    model: str  # row name as printed, e.g. "DNN+SE"
    kind: str  # one of KINDS
    preset: str | None  # None for classic models, which have no optimizer preset
    seed: int
    config: dict  # everything else that determines the result

    @property
    def config_hash(self) -> str:
        blob = json.dumps({**asdict(self)}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def filename(self) -> str:
        safe = "".join(c if c.isalnum() else "-" for c in self.model).strip("-")
        return f"{self.dataset}__{safe}__{self.preset or 'classic'}__s{self.seed}__{self.config_hash}.json"


class CellStore:
    """Finished cells of one table and profile, one JSON file each, under `out/cells/`."""

    def __init__(self, out: Path, table: str, profile: str):
        self.folder = Path(out) / "cells" / table / profile

    def path(self, cell: Cell) -> Path:
        return self.folder / cell.filename

    def load(self, cell: Cell) -> dict | None:
        """The stored record of `cell`, or None if absent or unreadable (it is then redone)."""
        try:
            return json.loads(self.path(cell).read_text())
        except (OSError, ValueError):
            return None

    def save(self, cell: Cell, record: dict) -> None:
        write_json_atomic(self.path(cell), record)


def write_json_atomic(path: Path, data: dict) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
