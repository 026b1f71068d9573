import functools
import http.server
import json
import os
import re
import shutil
import threading
import urllib.parse
from pathlib import Path

import pytest
import torch

from sharens.cli import main
from sharens.data import files
from sharens.provenance import git_revision
from sharens.regress import smoke_command

REPO = Path(__file__).resolve().parents[1]


SLOW_FIXTURES = ("smoke_out", "image_smoke")  # whole tables run at smoke: minutes each


def pytest_configure(config):
    """Under pytest-xdist each worker gets its share of the cores: torch's threads spinning on a core another
    worker holds make a two-thread test tens of times slower."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, torch.get_num_threads() // workers))


def pytest_collection_modifyitems(items):
    """Every test that reads a whole table's smoke run is `slow` (the fast tier: `nox -s tests`)."""
    for item in items:
        if set(SLOW_FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data: $SHARENS_DATA, else ../shared/data beside the repository."""
    root = Path(os.environ.get("SHARENS_DATA") or REPO.parent / "shared" / "data")
    if not (root / "uci").is_dir():
        pytest.skip(f"real data not found at {root}; set SHARENS_DATA")
    return root


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, data_root):
    """`smoke_run(tables)`: a new folder holding the tables run at smoke, as `nox -s regress` runs them."""
    return functools.partial(_smoke_run, tmp_path_factory, data_root)


def _smoke_run(tmp_path_factory, data_root: Path, tables: tuple[str, ...]) -> Path:
    """A copy of the run regress kept when SHARENS_SMOKE_RUN names it (`.ci/run` sets it, so CI trains each
    smoke cell once), else a run here. Each caller gets its own copy, so a test may rewrite what it reads."""
    out = tmp_path_factory.mktemp("smoke")
    kept = os.environ.get("SHARENS_SMOKE_RUN")
    if not kept:
        assert main(smoke_command(tables, out, jobs=2, data_root=data_root)) == 0
        return out
    here = git_revision()
    for table in tables:
        document = Path(kept) / f"{table}.json"
        if not document.is_file():
            pytest.fail(f"SHARENS_SMOKE_RUN={kept} holds no {table}.json: point it at the folder of "
                        "`python -m sharens.regress --out DIR`, or unset it to run the smoke tables here")
        made_at = json.loads(document.read_text())["provenance"]["git_revision"]
        if made_at != here:
            pytest.fail(f"SHARENS_SMOKE_RUN={kept} was run at revision {made_at}, this checkout is {here}: "
                        "rerun `python -m sharens.regress --out DIR` here, or unset it")
    shutil.copytree(kept, out, dirs_exist_ok=True)
    return out


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Tests share one derived-array cache, never the user's: every pytest-xdist worker the same one (each
    worker's temporary folder sits in the run's), so a data set is parsed once a run. Cache writes are atomic."""
    run = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("SHARENS_CACHE", str((run.parent if "PYTEST_XDIST_WORKER" in os.environ else run) / "cache"))


class MirrorHandler(http.server.SimpleHTTPRequestHandler):
    """A static file server that answers `Range: bytes=N-` (as mirrors do), and logs each request's path."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            return self.send_error(404)
        data = path.read_bytes()
        if self.path in self.server.corrupt_once:  # a transfer that went wrong once
            self.server.corrupt_once.remove(self.path)
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start = int(m[1]) if (m := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")) else 0
        if start >= len(data) > 0:
            return self.send_error(416)
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def serve(monkeypatch):
    """serve(folder) -> base URL of a local HTTP server for that folder (stopped after the test); the
    server's `requests` list holds (path, Range header) of every GET, at `serve.servers[-1].requests`; a
    path added to its `corrupt_once` set is served with a flipped first byte the next time it is asked for."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    servers = []

    def start(folder: Path) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                 functools.partial(MirrorHandler, directory=str(folder)))
        server.requests, server.corrupt_once = [], set()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    start.servers = servers
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def mirror(serve, monkeypatch, tmp_path):
    """mirror({official URL: bytes}) serves each payload at its URL's path on a local server and points
    $SHARENS_MIRROR at it, so downloads take the official layout from there; `mirror.place(url, bytes)`
    changes what it serves."""
    site = tmp_path / "mirror"
    site.mkdir()

    def start(contents: dict[str, bytes]) -> Path:
        for url, payload in contents.items():
            place(site, url, payload)
        monkeypatch.setenv(files.MIRROR_VARIABLE, serve(site))
        return site

    start.place = functools.partial(place, site)
    return start


def place(site: Path, url: str, payload: bytes) -> Path:
    """Write `payload` where a mirror rooted at `site` serves `url`."""
    path = site / urllib.parse.unquote(urllib.parse.urlsplit(url).path).lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path
