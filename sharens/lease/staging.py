"""Stage a campaign for a borrowed GPU that receives only the checkout, a limited number of bytes per call.

`stage` copies the verified data files the campaign's tables read into a git-ignored folder, cut into
chunk folders of at most `chunk_bytes` each (the checkout travels with every call, so a chunk is what is
left of a call's allowance: `room_per_call` measures it), and writes `run.sh`: on the device it joins the
chunks, checks every file's sha256, and runs the campaign with its cells packed into `$OUT`. Carry one
chunk folder per call, in order, while the machine stays warm (ignored files stay on it between calls); the
last chunk holds `run.sh`, which the last call runs. The folder must be git-ignored, or the chunks would
travel with every call.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
from pathlib import Path

from sharens.data import SOURCES, DataError, cache_dir, data_root

CALL_BYTES = 64 * 2**20  # what one call to the device carries: the checkout's travelling files and the carried paths
MARGIN_BYTES = 2**20  # for files the session writes between staging and the call

RUN_SCRIPT = """#!/bin/sh
# Written by `python -m sharens stage`: run on the device machine once every chunk folder has been carried
# there (this script travels in the last one). Usage: sh {script} BUDGET (e.g. 8m)
set -e
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
{joins}
(cd {folder}/data && sha256sum -c --quiet "$here/SHA256SUMS")
export PYTHONPATH="$PWD${{PYTHONPATH:+:$PYTHONPATH}}" PYTHONUNBUFFERED=1
export SHARENS_DATA="$PWD/{folder}/data" SHARENS_CACHE="$PWD/{folder}/cache"
python3 -m sharens campaign --device cuda --budget "${{1:-8m}}" --pack "${{OUT:-{folder}/out}}" {tables}
"""


def room_per_call(folder: Path) -> int:
    """Bytes a call can carry beside the checkout that holds `folder`: the allowance less the files that travel
    with every call (tracked, and untracked but not ignored). `folder` itself must be ignored, or every chunk
    would travel with every call."""
    repo = folder.parent.resolve()
    repo.mkdir(parents=True, exist_ok=True)
    found = subprocess.run(["git", "-C", str(repo), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if found.returncode != 0:
        raise DataError(f"{repo} is not in a git checkout: stage into a folder of the checkout the lease sends")
    if subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", f"{folder.name}/"]).returncode != 0:
        raise DataError(f"{folder} is not git-ignored, so its chunks would travel with every call: add "
                        f"'{folder.name}/' to .gitignore or .git/info/exclude")
    top = Path(found.stdout.strip())  # the whole checkout travels, not only the folder staged into
    listed = subprocess.run(["git", "-C", str(top), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout
    travelling = sum(path.stat().st_size for name in listed.split(b"\0") if name
                     and (path := top / name.decode()).is_file() and not path.is_symlink())
    return CALL_BYTES - travelling - MARGIN_BYTES


def stage(tables: list, folder: Path, chunk_bytes: int | None = None, root: Path | None = None) -> list[Path]:
    """Write the chunk folders and `run.sh` for `tables` into `folder`; return the chunk folders in order.
    Chunks are as large as a call allows beside the checkout (`room_per_call`) unless `chunk_bytes` says less."""
    room_left = room_per_call(folder)
    if chunk_bytes is None:
        chunk_bytes = room_left
    if chunk_bytes > room_left or chunk_bytes < 2**20:
        raise DataError(f"a call carries {CALL_BYTES / 2**20:.0f} MiB and the checkout already takes "
                        f"{(CALL_BYTES - MARGIN_BYTES - room_left) / 2**20:.1f} MiB of it, so a chunk can hold at most "
                        f"{max(room_left, 0) / 2**20:.1f} MiB (asked: {chunk_bytes / 2**20:.1f} MiB); "
                        "ask for less with --chunk-mib (at least 1), or commit fewer or smaller files")
    root = data_root(root)
    files: dict[str, Path] = {}
    for name in dict.fromkeys(d for table in tables for d in table.datasets):
        for label, (path, _) in SOURCES[name].sources(root, cache_dir()).items():
            files[label] = path
    if folder.exists():
        shutil.rmtree(folder)
    chunks: list[Path] = []
    room = 0
    joins, sums = [], []
    for label, path in files.items():
        data = path.read_bytes()
        sums.append(f"{hashlib.sha256(data).hexdigest()}  {label}")
        pieces = []
        for start in range(0, len(data), chunk_bytes):
            piece = data[start: start + chunk_bytes]
            if not chunks or len(piece) > room:
                chunks.append(folder / f"chunk-{len(chunks) + 1:02d}")
                chunks[-1].mkdir(parents=True)
                room = chunk_bytes
            target = chunks[-1] / f"{label.replace('/', '__')}.{start // chunk_bytes:04d}"
            target.write_bytes(piece)
            room -= len(piece)
            pieces.append(target.relative_to(folder.parent))
        joins.append(f"mkdir -p {folder.name}/data/{shlex.quote(str(Path(label).parent))} && cat "
                     + " ".join(shlex.quote(str(p)) for p in pieces)
                     + f" > {folder.name}/data/{shlex.quote(label)}")
    last = chunks[-1]
    (last / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    script = RUN_SCRIPT.format(folder=folder.name, script=last.relative_to(folder.parent) / "run.sh",
                               joins="\n".join(joins), tables=" ".join(f"--table {t.id}" for t in tables))
    (last / "run.sh").write_text(script)
    return chunks
