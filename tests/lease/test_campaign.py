"""A GPU lease's campaign: within its budget, most valuable cells first, resumable, packed to fit what a lease
brings back, unpacked into the results; and the staging of its data in chunk folders."""

import os
import subprocess
from pathlib import Path

import pytest
import torch

from benchmarks import get_table
from sharens.cli import main
from sharens.execution import costs
from sharens.execution.runner import run_table
from sharens.lease import campaign
from sharens.lease import staging as lease

CPU = torch.device("cpu")


@pytest.fixture
def lstm_cells_never_fit(monkeypatch):
    """The cost model says an LSTM cell needs a day and anything else nothing: which cells fit is then certain."""
    def seconds(self, spec, shape, epochs=None):
        return 86400.0 if spec.network.backbone == "deep_lstm" else 0.0

    monkeypatch.setattr(costs.CostModel, "seconds", seconds)
    monkeypatch.setattr(campaign, "RESERVE", 0.0)


@pytest.mark.slow
def test_a_campaign_runs_what_fits_in_order_and_the_next_one_resumes(data_root, tmp_path, lstm_cells_never_fit):
    table = get_table("table5_semg")
    done = campaign.run_campaign([table], device=CPU, budget_s=3600, out=tmp_path, data_root=data_root,
                                 profile="smoke")
    run = run_table(table, "smoke", out=tmp_path, data_root=data_root, execute=False)
    ran = {r["model"] for r in run.records}
    assert ran == {"DNN", "DNN+SE", "DNN+SE (accuracy-weighted vote)", "DNN x2 (independent)", "DNN DSN",
                   "DNN snapshots x2"}  # no classic rows
    cells = [p for p in done.finished if p.parent.name != "throughput"]
    assert len(cells) == 2 * len(run.records) and done.tables == ["table5_semg"] and not done.failed
    # the pairs' step times come first, on this device: they travel back with the cells
    measured = [p for p in done.finished if p.parent.name == "throughput"]
    assert {p.name.split("__")[1] for p in measured} == {"DNN", "Deep-LSTM"}
    assert done.finished[:len(measured)] == measured
    # 2 seeds x 2 presets x (baseline, SE, x2, DSN, snapshots)
    assert len(done.left) == 20 and all("Deep LSTM" in line and "needs up to 86400 s" in line for line in done.left)
    again = campaign.run_campaign([table], device=CPU, budget_s=3600, out=tmp_path, data_root=data_root,
                                  profile="smoke")
    assert not again.finished and len(again.left) == 20  # resumed: the stored cells are not run again


@pytest.mark.slow
def test_a_campaign_at_smoke_runs_with_every_option_cuda_turns_on(data_root, tmp_path, lstm_cells_never_fit):
    """Until a GPU is lent, the options a CUDA campaign switches on by default (bf16 autocast, channels_last,
    batched members and seeds) run here on the CPU, forced, so the first GPU run meets no code that never ran;
    its cells and step times come back as a lease's do."""
    cuda_defaults = ("bf16", "channels_last", "batched_members", "batched_seeds")
    table = get_table("table5_semg")
    done = campaign.run_campaign([table], device=CPU, budget_s=3600, out=tmp_path, data_root=data_root,
                                 profile="smoke", speed=cuda_defaults)
    assert done.finished and not done.failed
    run = run_table(table, "smoke", out=tmp_path, data_root=data_root, execute=False)
    batched = [r for r in run.records if r["model"] == "DNN x2 (independent)"]
    assert batched and all(set(r["spec"]["network"]["speed"]) >= {"bf16", "batched_members", "batched_seeds"}
                           for r in batched)
    assert all(r["status"] == "ok" for r in run.records)
    assert {m["pair"] for m in run.throughput} == {"DNN", "Deep LSTM"}


def test_a_spent_budget_starts_nothing(data_root, tmp_path, lstm_cells_never_fit):
    done = campaign.run_campaign([get_table("table5_semg")], device=CPU, budget_s=0, out=tmp_path,
                                 data_root=data_root, profile="smoke")
    assert not done.finished and all("budget is spent" in line for line in done.left)


@pytest.mark.slow
def test_packs_fit_what_a_lease_brings_back_and_unpack_restores_the_cells(data_root, tmp_path, monkeypatch,
                                                                          lstm_cells_never_fit, capsys):
    table = get_table("table5_semg")
    done = campaign.run_campaign([table], device=CPU, budget_s=3600, out=tmp_path / "lease", data_root=data_root,
                                 profile="smoke")
    biggest = max(p.stat().st_size for p in done.finished)
    monkeypatch.setattr(campaign, "PACK_BYTES", 3 * biggest)  # room for about one cell per pack
    monkeypatch.setattr(campaign, "MAX_PACKS", 3)
    archives, left = campaign.pack(done.finished, tmp_path / "lease", tmp_path / "OUT")
    assert len(archives) == 3 and all(a.stat().st_size <= 3 * biggest for a in archives)
    assert left and {p.with_suffix("") for p in left}.isdisjoint({p.with_suffix("") for p in done.finished[:2]})
    assert main(["unpack", *map(str, archives), "--out", str(tmp_path / "results"), "--data-root",
                 str(data_root)]) == 0
    assert "table5_semg at smoke" in capsys.readouterr().out and (tmp_path / "results" / "table5_semg.md").exists()
    back = run_table(table, "smoke", out=tmp_path / "results", data_root=data_root, execute=False)

    def cells(paths):
        return {p.with_suffix("") for p in paths if p.parent.name != "throughput"}

    shipped = len(cells(done.finished)) - len(cells(left))
    assert len(back.records) == shipped and all(back.outcomes.get(r) is not None for r in back.records)
    measured = [p for p in done.finished if p.parent.name == "throughput" and p not in left]
    assert len(back.throughput) == len(measured) > 0  # the step times came back with the cells


def test_unpack_refuses_an_archive_that_is_not_cells(tmp_path, capsys):
    import tarfile

    (tmp_path / "evil").write_text("x")
    with tarfile.open(tmp_path / "bad.tar", "w") as tar:
        tar.add(tmp_path / "evil", arcname="../evil")
    assert main(["unpack", str(tmp_path / "bad.tar"), "--out", str(tmp_path / "results")]) == 1
    assert "is not a cell file" in capsys.readouterr().err and not (tmp_path / "results").exists()


def _checkout(repo: Path, tracked_bytes: int = 0) -> Path:
    """A git checkout that ignores `.lease/` and tracks a file of `tracked_bytes`."""
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text(".lease/\n")
    (repo / "results.bin").write_bytes(b"x" * tracked_bytes)
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    return repo


def test_stage_chunks_hold_what_a_call_carries_beside_the_checkout(data_root, tmp_path, capsys):
    """A chunk is the 64 MiB of a call less the checkout's files (tracked, and untracked but not ignored);
    a chunk asked larger, or a staging folder that would itself travel, is refused with the fix."""
    repo = _checkout(tmp_path / "repo", tracked_bytes=55 * 2**20)
    (repo / "notes.txt").write_bytes(b"y" * 2**20)  # untracked, not ignored: travels too
    room = lease.room_per_call(repo / ".lease")
    assert room == lease.CALL_BYTES - 56 * 2**20 - lease.MARGIN_BYTES - len(".lease/\n")
    assert main(["stage", "--table", "figure2_mnist", "--dir", str(repo / ".lease"),
                 "--data-root", str(data_root)]) == 0
    # MNIST's train images (9.5 MiB) fill one chunk and spill into the next
    assert max(p.stat().st_size for p in (repo / ".lease").rglob("*.gz.*")) == room
    assert main(["stage", "--table", "figure2_mnist", "--dir", str(repo / ".lease"), "--chunk-mib", "30",
                 "--data-root", str(data_root)]) == 1
    assert "a chunk can hold at most 7.0 MiB" in capsys.readouterr().err
    assert main(["stage", "--table", "figure2_mnist", "--dir", str(repo / "staged"), "--chunk-mib", "4",
                 "--data-root", str(data_root)]) == 1
    assert "is not git-ignored" in capsys.readouterr().err and not (repo / "staged").exists()


def test_stage_cuts_the_data_into_chunks_that_run_sh_joins_and_checks(data_root, tmp_path, capsys):
    """The staged chunks, copied into a checkout as consecutive calls would, are joined, verified, and handed
    to the campaign (a stand-in `python3` records its arguments)."""
    repo = _checkout(tmp_path / "repo")
    assert main(["stage", "--table", "figure2_mnist", "--dir", str(repo / ".lease"), "--chunk-mib", "4",
                 "--data-root", str(data_root)]) == 0
    calls = [line for line in capsys.readouterr().out.splitlines() if line.startswith("call")]
    chunks = sorted((repo / ".lease").glob("chunk-*"))
    assert len(calls) == len(chunks) >= 3 and "run.sh" in calls[-1]
    assert all(sum(p.stat().st_size for p in c.iterdir() if ".gz." in p.name) <= 4 * 2**20 for c in chunks)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").write_text('#!/bin/sh\necho "$@" > "$OUT/args"\n')
    (fake / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "OUT": str(tmp_path)}
    subprocess.run(["sh", str(chunks[-1] / "run.sh"), "3m"], check=True, env=env, cwd=tmp_path)
    for rel in ("mnist/train-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"):
        assert (repo / ".lease" / "data" / rel).read_bytes() == (data_root / rel).read_bytes()
    args = (tmp_path / "args").read_text().split()
    assert args[:5] == ["-m", "sharens", "campaign", "--device", "cuda"] and "3m" in args and "figure2_mnist" in args
    (repo / ".lease" / "chunk-01" / next(Path(repo / ".lease" / "chunk-01").iterdir()).name).write_bytes(b"bad")
    broken = subprocess.run(["sh", str(chunks[-1] / "run.sh")], env=env, cwd=tmp_path, capture_output=True)
    assert broken.returncode != 0  # a chunk that does not join into the verified file stops it
