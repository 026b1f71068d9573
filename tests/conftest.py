import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data: $SHARENS_DATA, else ../shared/data beside the repository."""
    root = Path(os.environ.get("SHARENS_DATA") or REPO.parent / "shared" / "data")
    if not (root / "uci").is_dir():
        pytest.skip(f"real data not found at {root}; set SHARENS_DATA")
    return root


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Tests share one derived-array cache, never the user's."""
    monkeypatch.setenv("SHARENS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
