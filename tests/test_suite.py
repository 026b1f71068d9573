"""End to end on the real data: the tables at smoke, work orders, stored cells, determinism, resume, bad input."""

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import sharens.data as data
from benchmarks import get_table
from sharens.cli import main
from sharens.data import files
from sharens.execution.runner import run_table
from sharens.judge import document
from sharens.model import metrics, voting
from sharens.model.analysis import MIN_FIT_ROWS
from sharens.suite.plan import plan
from sharens.suite.store import CellStore, Outcomes, read_document
from sharens.train import loop, presets

TABLES = ("table7_uci", "table5_semg", "table6_imdb", "table4_gtzan")


@pytest.fixture(scope="module")
def smoke_out(smoke_run):
    return smoke_run(TABLES)


@pytest.mark.parametrize("table_id", TABLES)
def test_smoke_run_writes_report_and_json(smoke_out, table_id):
    doc = json.loads((smoke_out / f"{table_id}.json").read_text())
    table = get_table(table_id)
    assert doc["schema"] == document.SCHEMA and doc["profile"] == "smoke"
    run_rows = [r for r in doc["rows"] if r["variant"] != "cited"]
    variants = {"baseline", "se", "independent", "classic"} | ({"se_weighted"} if any(
        p.weighted_vote_holdout for p in table.pairs) else set()) | ({"dsn"} if any(
        p.deeply_supervised for p in table.pairs) else set()) | ({"snapshot"} if any(
        p.snapshot_ensemble for p in table.pairs) else set())
    assert {r["variant"] for r in run_rows} == variants
    first = [(r["model"], r["variant"]) for r in run_rows
             if r["preset"] == "tuned" and r["dataset"] == table.datasets[0]]
    assert first == [(row.label, row.variant) for row in table.rows(table.profile("smoke")) if row.pair]
    for row in run_rows:
        if row["preset"] == "paper" and row["status"].startswith("diverged"):
            continue  # Adam at lr 0.5 may blow up: recorded, not an error
        assert row["accuracy"]["n"] == 2 and row["status"] == "ok"
        assert 0 <= row["accuracy"]["mean"] <= 100 and row["train_samples_per_s"] > 0
    cited = [r for r in doc["rows"] if r["variant"] == "cited"]
    assert cited and all(r["accuracy"] is None for r in cited)  # gcForest is never re-run
    assert {c["pair"] for c in doc["claims"]} == {p.name for p in table.pairs}
    assert {(m["dataset"], m["pair"]) for m in doc["throughput"]} >= {(d, p.name) for d in table.datasets
                                                                       for p in table.profile("smoke").pairs
                                                                       or table.pairs}  # timed here
    cell = doc["cells"][0]["provenance"]
    assert {"git_revision", "versions", "device", "wall_seconds"} <= set(cell)
    se_cell = next(c for c in doc["cells"] if c["variant"] == "se")
    assert len(se_cell["head_accuracies"]) == len(se_cell["head_names"]) > 1
    assert se_cell["flops_per_sample"] > 0 and se_cell["params"] > 0
    assert set(se_cell["votes"]) == set(voting.VOTES) - {"accuracy_weighted"}
    assert se_cell["accuracy"] == se_cell["votes"]["soft"]["accuracy"] == se_cell["metrics"]["accuracy"]
    for weighted in (c for c in doc["cells"] if c["variant"] == "se_weighted"):
        assert len(weighted["vote_weights"]) == len(weighted["head_names"]) and weighted["n_holdout"] > 0
        assert weighted["accuracy"] == weighted["votes"]["accuracy_weighted"]["accuracy"]
        # its held-out rows fit a temperature and the early-exit thresholds (sharens.model.analysis), if enough
        fitted = weighted["analysis"]["calibration"]["vote"]["temperature"]
        if weighted["n_holdout"] >= MIN_FIT_ROWS:
            assert fitted > 0 and weighted["analysis"]["early_exit"]
        else:
            assert fitted is None and "early_exit" not in weighted["analysis"]
    analysed = se_cell["analysis"]
    assert analysed["calibration"]["vote"]["before"]["accuracy"] == pytest.approx(se_cell["accuracy"], rel=1e-4)
    assert analysed["anytime"][-1]["flops"] == pytest.approx(se_cell["flops_per_sample"], rel=1e-4)
    # a smoke run is on slices of the data: never compared with the paper's full-split numbers
    assert {r["verdict"] for r in run_rows if r["paper"] is not None and r["accuracy"]["n"]} == {"not comparable"}
    assert (smoke_out / f"{table_id}.png").read_bytes().startswith(b"\x89PNG")
    markdown = (smoke_out / f"{table_id}.md").read_text()
    assert "cited, not re-run" in markdown and "Claim: SE beats its baseline" in markdown
    assert f"]({table_id}.png)" in markdown
    assert "## Calibration, diversity and anytime prediction" in markdown and f"]({table_id}_anytime.png)" in markdown


@pytest.mark.parametrize("table_id", TABLES)
def test_every_finished_cell_keeps_its_test_rows(smoke_out, table_id, tmp_path):
    """The cell store holds, per test row, the label, the prediction and (networks) every head's class and the
    vote's float16 probabilities; the pack holds the same but the probabilities of a cell that recorded every
    metric (nothing is computed from them then). Each cell's arrays match its record's checksum (a packed entry
    that left some out, by its seal) and its recorded accuracy."""
    doc = json.loads((smoke_out / f"{table_id}.json").read_text())
    stored = Outcomes.from_store(CellStore(smoke_out, table_id, "smoke"), doc["cells"])
    packed = Outcomes.from_pack(smoke_out / f"{table_id}.outcomes.npz")
    finished = [c for c in doc["cells"] if c["status"] == "ok"]
    for cell in finished:
        arrays, full = packed.get(cell), stored.get(cell)
        assert arrays is not None and len(arrays["y"]) == cell["n_test"] == cell["outcomes"]["rows"]
        assert 100 * np.mean(arrays["predicted"] == arrays["y"]) == pytest.approx(cell["accuracy"])
        assert all(np.array_equal(a, full[name]) for name, a in arrays.items())
        if cell["variant"] != "classic":
            assert arrays["heads"].shape == (cell["n_test"], len(cell["head_names"]))
            assert full["probabilities"].dtype == np.float16 and "probabilities" not in arrays
            assert np.allclose(full["probabilities"].astype(float).sum(1), 1, atol=1e-2)
    network = next(c for c in finished if c["variant"] != "classic")
    lacking = {**network, "metrics": {"accuracy": network["accuracy"]}}  # a cell from before most metrics
    stored.pack([lacking], tmp_path / "pack.npz")
    assert "probabilities" in Outcomes.from_pack(tmp_path / "pack.npz").get(lacking)
    entries = packed.by_key
    entries[network["key"]]["y"] = entries[network["key"]]["y"][::-1].copy()  # tampered with
    with pytest.raises(ValueError, match="do not match their checksum"):
        packed.get(network)
    other = next(c for c in finished if c["variant"] != "classic" and c["key"] != network["key"])
    entries[network["key"]] = entries[other["key"]]  # another cell's sealed arrays
    with pytest.raises(ValueError, match="do not match their checksum"):
        packed.get(network)


@pytest.mark.slow
def test_same_seed_same_numbers(smoke_out, data_root, tmp_path):
    """A forced rerun on this machine reproduces every accuracy bit for bit."""
    run = run_table(get_table("table5_semg"), "smoke", out=tmp_path, data_root=data_root, force=True)
    assert not run.errors
    rerun = {(r["model"], r["preset"], r["seed"]): r.get("accuracy") for r in run.records}
    first = json.loads((smoke_out / "table5_semg.json").read_text())["cells"]
    assert rerun == {(r["model"], r["preset"], r["seed"]): r.get("accuracy") for r in first}


@pytest.mark.slow
def test_parallel_cells_give_the_sequential_numbers(data_root, tmp_path):
    """--jobs 2 (worker processes) and sequential runs in this process at 1 and at 2 threads give the same
    numbers and the same test-row outcomes: every spec fixes its own thread count, whatever the schedule."""
    table = get_table("table7_uci")
    threads = torch.get_num_threads()
    runs = []
    try:
        for parent_threads, jobs in ((1, 1), (2, 1), (2, 2)):
            torch.set_num_threads(parent_threads)
            runs.append(run_table(table, "smoke", out=tmp_path / f"{parent_threads}-{jobs}", data_root=data_root,
                                  seeds=1, jobs=jobs))
    finally:
        torch.set_num_threads(threads)
    assert not any(run.errors for run in runs)
    first, *others = ({r["key"]: r for r in run.records} for run in runs)
    assert len(first) == 63
    for other in others:
        assert other.keys() == first.keys()
        for key, record in first.items():
            assert other[key]["accuracy"] == record["accuracy"], record["model"]
            assert other[key].get("outcomes") == record.get("outcomes"), record["model"]  # same sha256
    assert {r["provenance"]["device"] for r in first.values()} == {r["provenance"]["device"]
                                                                   for r in others[-1].values()}


def test_a_cell_fixes_the_blas_threads_that_numpy_and_scikit_learn_call():
    """The spec's thread count binds every thread pool a cell may use (a logistic regression's sums run in
    OpenBLAS), not only torch's; the pools are given back after the cell."""
    from threadpoolctl import threadpool_info

    from sharens.execution.cell import fixed_threads

    before = {pool["filepath"]: pool["num_threads"] for pool in threadpool_info()}
    with fixed_threads(1):
        assert {pool["user_api"] for pool in threadpool_info()} >= {"blas"}
        assert {pool["num_threads"] for pool in threadpool_info()} == {1}
    assert {pool["filepath"]: pool["num_threads"] for pool in threadpool_info()} == before


def test_a_forest_grows_its_trees_on_the_cells_threads_only():
    """Beside the other cells of a run, a classic estimator takes the threads its spec declares (and its
    provenance records), not every core (a forest's `n_jobs=-1`)."""
    from sharens.model.classic import build_classic

    table = get_table("table3_cifar10")
    specs = [s for s in plan(table, table.profile("smoke"), 1, ["tuned"], ["cifar10"]) if s.classic]
    assert any(s.classic.estimator == "random_forest" for s in specs)
    for spec in specs:
        c = spec.classic
        estimator = build_classic(c.estimator, spec.seed, c.forest_trees, c.max_iter, spec.threads)
        assert getattr(estimator, "n_jobs", None) in (None, spec.threads), c.estimator


@pytest.mark.slow
def test_a_spec_runs_in_a_spawned_worker_that_never_imports_benchmarks(data_root):
    """The work order is self-contained: a fresh process unpickles a spec and runs it without the tables."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from sharens.execution.executors import _run_in_worker

    table = get_table("table7_uci")
    spec = next(s for s in plan(table, table.profile("smoke"), 1, ["tuned"], ["yeast"]) if s.row.variant == "se")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        ((record, outcomes),) = pool.submit(_run_in_worker, [spec], "cpu", data_root).result()
        imported = pool.submit(eval, "'benchmarks' in __import__('sys').modules").result()
    assert record["status"] == "ok" and record["model"] == "DNN+SE" and len(outcomes["y"]) == 256
    assert imported is False


def test_a_changed_data_file_or_reader_makes_stored_cells_stale(data_root, tmp_path, monkeypatch):
    table = get_table("table7_uci")

    def run(root):
        return run_table(table, "smoke", out=tmp_path / "out", data_root=root, seeds=1, presets=["tuned"],
                         datasets=["yeast"])

    first = run(data_root)
    assert {r["key"] for r in run(data_root).records} == {r["key"] for r in first.records}  # reused
    with monkeypatch.context() as patched:
        patched.setitem(data.SOURCES, "yeast", dataclasses.replace(data.SOURCES["yeast"], version=99))
        newer_reader = run(data_root)
    assert not {r["key"] for r in newer_reader.records} & {r["key"] for r in first.records}  # all recomputed
    assert {r["data"]["reader_version"] for r in newer_reader.records} == {99}
    edited = tmp_path / "root" / "uci" / "yeast.data"
    edited.parent.mkdir(parents=True)
    content = (data_root / "uci" / "yeast.data").read_bytes()
    edited.write_bytes(content.replace(b"0.58", b"0.59", 1))  # one value of one row changed
    monkeypatch.setitem(files.MANIFEST, "uci/yeast.data", dataclasses.replace(
        files.MANIFEST["uci/yeast.data"], sha256=hashlib.sha256(edited.read_bytes()).hexdigest()))
    other_file = run(tmp_path / "root")
    assert not {r["key"] for r in other_file.records} & {r["key"] for r in first.records}


@pytest.mark.slow
def test_a_vote_and_a_metric_added_through_their_registries_reach_json_and_markdown(data_root, tmp_path):
    @voting.register_vote("first_head", "the shallowest head alone")
    def first_head(logits, ballot):
        return logits[:, 0].softmax(-1)

    @metrics.register_metric("error", "test error (%)")
    def error(scores, targets):
        return 100.0 - metrics.accuracy(scores, targets)

    try:
        assert main(["reproduce", "--table", "table5_semg", "--profile", "smoke", "--seeds", "1", "--preset",
                     "tuned", "--out", str(tmp_path), "--data-root", str(data_root), "--no-throughput"]) == 0
    finally:
        del voting.VOTES["first_head"], metrics.METRICS["error"]
    doc = json.loads((tmp_path / "table5_semg.json").read_text())
    se = next(r for r in doc["rows"] if r["model"] == "DNN+SE")
    assert 0 <= se["votes"]["first_head"] <= 100
    assert se["metrics"]["error"] == pytest.approx(100 - se["accuracy"]["mean"])
    markdown = (tmp_path / "table5_semg.md").read_text()
    assert "first_head" in markdown and "the shallowest head alone" in markdown


@pytest.mark.slow
def test_report_is_rebuilt_from_stored_cells_alone(smoke_out, tmp_path, capsys):
    stored = json.loads((smoke_out / "table5_semg.json").read_text())
    assert main(["report", "--table", "table5_semg", "--source", str(smoke_out / "table5_semg.json"),
                 "--out", str(tmp_path)]) == 0
    rebuilt = json.loads((tmp_path / "table5_semg.json").read_text())
    assert rebuilt["rows"] == stored["rows"] and rebuilt["claims"] == stored["claims"]
    assert (tmp_path / "table5_semg.outcomes.npz").read_bytes() == (smoke_out / "table5_semg.outcomes.npz").read_bytes()
    assert (tmp_path / "table5_semg.md").read_text().startswith("# Table 5")
    assert main(["report", "--table", "table7_uci", "--source", str(smoke_out / "table5_semg.json"),
                 "--out", str(tmp_path)]) == 2
    assert main(["report", "--table", "table7_uci", "--out", str(tmp_path / "none")]) == 1
    assert "reproduce --table table7_uci" in capsys.readouterr().err


@pytest.mark.slow
def test_rerun_skips_finished_cells(smoke_out, data_root):
    before = {p: p.stat().st_mtime_ns for p in smoke_out.glob("cells/table7_uci/smoke/*.json")}
    assert main(["reproduce", "--table", "table7_uci", "--profile", "smoke", "--out", str(smoke_out),
                 "--data-root", str(data_root)]) == 0
    assert before == {p: p.stat().st_mtime_ns for p in smoke_out.glob("cells/table7_uci/smoke/*.json")}


@pytest.mark.slow
def test_killed_run_resumes_and_loses_nothing(data_root, tmp_path):
    cells = tmp_path / "cells" / "table5_semg" / "smoke"
    cmd = [sys.executable, "-m", "sharens", "reproduce", "--table", "table5_semg", "--profile", "smoke",
           "--preset", "tuned", "--out", str(tmp_path), "--data-root", str(data_root), "--no-throughput"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
    deadline = time.time() + 120
    while len(list(cells.glob("*.json"))) < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    survived = {p.name: p.read_bytes() for p in cells.glob("*.json")}
    assert 5 <= len(survived) < 20, "the kill should land mid-run"
    assert not (tmp_path / "table5_semg.json").exists()
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    finished = {p.name: p.read_bytes() for p in cells.glob("*.json")}
    assert len(finished) == 28  # 2 seeds x (3 classic + 2 pairs x 5 rows + 1 weighted-vote row)
    assert len(list(cells.glob("*.npz"))) == 28  # and the outcomes of each
    assert all(finished[name] == data for name, data in survived.items())  # not redone
    assert len(json.loads((tmp_path / "table5_semg.json").read_text())["cells"]) == 28


def test_a_cell_killed_mid_training_resumes_from_its_last_epoch(smoke_out, data_root, tmp_path, monkeypatch):
    """A run killed inside a cell's training resumes that cell after its last saved epoch (the runner keeps
    checkpoints in the store's `partial/`), and the cell ends with the numbers of the run that was not killed.
    `--force` starts it again from its first epoch."""
    from sharens.train import checkpoint

    monkeypatch.setattr(checkpoint, "EVERY_SECONDS", 0.0)
    end_epoch = loop.Progress.end_epoch

    def killed_in_epoch_2(progress, epoch, *args):  # smoke trains 2 epochs
        if epoch == 2:
            raise KeyboardInterrupt
        end_epoch(progress, epoch, *args)

    options = dict(out=tmp_path, data_root=data_root, presets=["tuned"], seeds=1, rows=["DNN"])
    monkeypatch.setattr(loop.Progress, "end_epoch", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run_table(get_table("table5_semg"), "smoke", **options)
    partial = tmp_path / "cells" / "table5_semg" / "smoke" / "partial"
    assert len(list(partial.glob("*.seed0.pt"))) == 1
    assert run_table(get_table("table5_semg"), "smoke", execute=False, **options).resumable == 1
    monkeypatch.setattr(loop.Progress, "end_epoch", end_epoch)
    (resumed,) = [r for r in run_table(get_table("table5_semg"), "smoke", **options).records if r["model"] == "DNN"]
    assert resumed["resumed_after_epochs"] == [1] and not list(partial.glob("*.pt"))
    whole = json.loads(next(smoke_out.glob(f"cells/table5_semg/smoke/*__{resumed['key']}.json")).read_text())
    for field in ("accuracy", "epoch_loss", "heldout_loss", "best_epoch", "outcomes"):
        assert resumed[field] == whole[field], field

    monkeypatch.setattr(loop.Progress, "end_epoch", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run_table(get_table("table5_semg"), "smoke", force=True, **options)
    assert list(partial.glob("*.pt"))
    monkeypatch.setattr(loop.Progress, "end_epoch", end_epoch)
    (forced,) = [r for r in run_table(get_table("table5_semg"), "smoke", force=True, **options).records
                 if r["model"] == "DNN"]
    assert "resumed_after_epochs" not in forced and forced["accuracy"] == whole["accuracy"]


def test_diverged_cells_are_marked_and_the_run_goes_on(data_root, tmp_path, monkeypatch):
    monkeypatch.setitem(presets.PRESETS, "paper", presets.Preset("paper", 1e7, 1e6, "blow up"))
    run = run_table(get_table("table5_semg"), "smoke", out=tmp_path, data_root=data_root, presets=["paper"],
                    seeds=1)
    assert not run.errors
    diverged = [r for r in run.records if r["status"] == "diverged"]
    assert diverged and all(r["diverged_at_step"] is not None and "outcomes" not in r for r in diverged)
    assert any(r["status"] == "ok" for r in run.records)  # the classic rows still ran
    doc = document.build(get_table("table5_semg"), "smoke", run.records)
    assert any(r["status"].startswith("diverged") for r in doc["rows"])


def test_unknown_table_is_a_clear_error(capsys):
    assert main(["reproduce", "--table", "table9_nope", "--profile", "smoke"]) == 2
    assert "unknown table 'table9_nope'" in capsys.readouterr().err


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    code = main(["reproduce", "--table", "table7_uci", "--profile", "smoke", "--out", str(tmp_path),
                 "--data-root", str(tmp_path / "nowhere"), "--no-download"])
    err = capsys.readouterr().err
    assert code == 1 and "nowhere" in err and "python -m sharens download" in err and "--no-download" in err
    assert not (tmp_path / "nowhere").exists()
    assert "Traceback" not in err


def test_impossible_options_are_refused(capsys):
    assert main(["reproduce", "--table", "table7_uci", "--seeds", "0"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert main(["reproduce", "--table", "table7_uci", "--jobs", "0"]) == 2
    assert "--jobs" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA device"):
            main(["reproduce", "--table", "table7_uci", "--device", "cuda"])


def test_list_names_tables_profiles_and_presets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("table7_uci", "table5_semg", "table6_imdb", "table4_gtzan", "DNN+SE", "Deep LSTM+SE",
                 "Deep CNN+SE", "profile full", "preset paper"):
        assert word in out


def test_a_table_can_give_a_preset_name_its_own_meaning():
    table = get_table("table7_uci")
    own = presets.Preset("paper", 0.1, 1e-3, "Figure 2's rate")
    changed = dataclasses.replace(table, preset_overrides={"paper": own})
    assert changed.preset("paper") is own and changed.preset("tuned") is presets.PRESETS["tuned"]
    cells = plan(changed, changed.profile("smoke"), 1, ["paper"], ["yeast"])
    assert {c.network.optimizer["lr0"] for c in cells if c.preset} == {0.1}
    with pytest.raises(ValueError, match="unknown preset"):
        changed.preset("fast")


def test_paper_rows_must_match_a_row_or_be_cited():
    table = get_table("table7_uci")
    with pytest.raises(ValueError, match=r"paper rows \['DNN \+SE'\] match no row"):
        dataclasses.replace(table, paper={**table.paper, "DNN +SE": {"letter": 96.88}})
    with pytest.raises(ValueError, match="match no row"):
        dataclasses.replace(table, cited=())  # gcForest is shown but not re-run: it must be declared so


def test_a_document_holds_each_data_identity_once(smoke_out, tmp_path):
    """`<table>.json` names each cell's data identity by a digest and holds the identities once; read back, every
    cell is the record the cell store holds, though each curve was written on one line. A digest the document
    does not hold is a clear error."""
    text = (smoke_out / "table7_uci.json").read_text()
    assert '"epoch_loss": [' in text and '"epoch_loss": [\n' not in text
    written = json.loads(text)
    assert len(written["data_identities"]) == len(get_table("table7_uci").datasets)
    assert all(isinstance(c["data"], str) for c in written["cells"])
    store = CellStore(smoke_out, "table7_uci", "smoke")
    for cell in read_document(smoke_out / "table7_uci.json")["cells"]:
        assert cell == json.loads(next(store.folder.glob(f"*__{cell['key']}.json")).read_text())
    written["data_identities"].popitem()
    (tmp_path / "table7_uci.json").write_text(json.dumps(written))
    with pytest.raises(ValueError, match="names data identities it does not hold"):
        read_document(tmp_path / "table7_uci.json")


@pytest.mark.slow
def test_a_rewritten_report_leaves_no_figure_it_no_longer_draws(smoke_out, tmp_path, monkeypatch):
    """A figure an earlier write drew (the loss curves of unfit cells) is removed when the report is written again
    without it, rather than left beside the report, stale."""
    from sharens.report import markdown as report
    from sharens.report import plots

    table, cells = get_table("table5_semg"), read_document(smoke_out / "table5_semg.json")["cells"]
    report.write(table, "smoke", cells, tmp_path)
    curves = tmp_path / "table5_semg_curves.png"
    assert curves.exists()  # smoke cells train 2 epochs: unfit for a verdict, their curves plotted
    monkeypatch.setattr(plots, "loss_curves", lambda doc, path: None)
    md, _ = report.write(table, "smoke", cells, tmp_path)
    assert not curves.exists() and "![loss curves" not in md.read_text()


def test_mixed_revisions_and_cells_without_outcomes_are_stated(smoke_out, tmp_path):
    from sharens.report import markdown as report

    doc = read_document(smoke_out / "table5_semg.json")
    cells = [dict(c) for c in doc["cells"]]
    cells[0]["provenance"] = {**cells[0]["provenance"], "git_revision": "0" * 40}
    del cells[1]["outcomes"]
    markdown = report.markdown(document.build(get_table("table5_semg"), "smoke", cells), get_table("table5_semg"))
    assert "**Mixed revisions:** the cells behind this table ran at 2 git revisions" in markdown
    assert "**Older cells:** 1 finished cells" in markdown and "**Incomplete:**" not in markdown
    dropped = [c for c in cells if not (c["model"] == "DNN" and c["preset"] == "paper" and c["seed"] == 1)]
    markdown = report.markdown(document.build(get_table("table5_semg"), "smoke", dropped), get_table("table5_semg"))
    assert "**Incomplete:** these rows have fewer of the 2 seeds than the others" in markdown
    assert "DNN (paper, semg): 1" in markdown and "**Not run:**" not in markdown
    no_forest = document.build(get_table("table5_semg"), "smoke", [c for c in cells if c["model"] != "Random Forest"])
    assert no_forest["not_run"] == [{"dataset": "semg", "model": "Random Forest", "paper": 29.62}]
    assert "so they have no verdict: Random Forest (semg, paper 29.62)." in report.markdown(no_forest,
                                                                                             get_table("table5_semg"))


@pytest.mark.slow
def test_dry_run_and_a_report_from_the_cell_store(smoke_out, data_root, tmp_path, capsys):
    """--dry-run counts the plan's stored and pending cells without running any; `report --profile` builds the
    report from the stored cells of the current plan (a run cut short, or one still going)."""
    args = ["--table", "table5_semg", "--profile", "smoke", "--data-root", str(data_root)]
    assert main(["reproduce", *args, "--out", str(smoke_out), "--dry-run"]) == 0
    assert "table5_semg at smoke: 50 cells planned, 50 stored, 0 to run" in capsys.readouterr().out
    assert main(["reproduce", *args, "--out", str(tmp_path), "--dry-run"]) == 0
    assert "50 cells planned, 0 stored, 50 to run" in capsys.readouterr().out
    assert not (tmp_path / "cells").exists() and not (tmp_path / "table5_semg.json").exists()
    before = json.loads((smoke_out / "table5_semg.json").read_text())["rows"]
    (smoke_out / "table5_semg.json").unlink()
    assert main(["report", *args, "--out", str(smoke_out)]) == 0
    assert json.loads((smoke_out / "table5_semg.json").read_text())["rows"] == before
    assert main(["report", *args, "--out", str(tmp_path)]) == 1
    assert "no stored cells" in capsys.readouterr().err


def test_a_fresh_clone_resumes_from_committed_results(smoke_out, data_root, tmp_path):
    """The committed `<table>.json` and `<table>.outcomes.npz` are enough to resume: their cells count as stored
    (checked against their outcomes' checksums); without the pack they are recomputed."""
    import shutil

    table = get_table("table5_semg")
    for name in ("table5_semg.json", "table5_semg.outcomes.npz"):
        shutil.copy(smoke_out / name, tmp_path / name)
    run = run_table(table, "smoke", out=tmp_path, data_root=data_root, execute=False)
    assert len(run.records) == 50 and not run.errors
    assert all(run.outcomes.get(r) is not None for r in run.records if r["status"] == "ok")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(smoke_out / "table5_semg.json", bare / "table5_semg.json")
    assert len(run_table(table, "smoke", out=bare, data_root=data_root, execute=False).errors) == 50
    # forcing some rows of a fresh clone redoes them and keeps every other committed cell in the report
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("table5_semg.json", "table5_semg.outcomes.npz"):
        shutil.copy(smoke_out / name, clone / name)
    forced = run_table(table, "smoke", out=clone, data_root=data_root, force=True, rows=["Random Forest"])
    assert len(forced.records) == 50 and not forced.errors
    assert len(json.loads((clone / "table5_semg.json").read_text())["cells"]) == 50


def test_committed_cells_from_before_keys_stay_in_the_report_until_their_row_is_rerun(smoke_out, data_root,
                                                                                     tmp_path):
    """Cells committed before cells were keyed cannot be stored or resumed; a report keeps them (as older cells)
    beside the cells of today's plan, and drops a row's older cells once any of its seeds is rerun, so that no
    row mixes cells of two code versions."""
    doc = json.loads((smoke_out / "table5_semg.json").read_text())
    for cell in doc["cells"]:
        if cell["model"] == "Random Forest":
            del cell["key"]
    (tmp_path / "table5_semg.json").write_text(json.dumps(doc))
    table = get_table("table5_semg")
    before = run_table(table, "smoke", out=tmp_path, data_root=data_root, execute=False)
    assert len(before.records) == 0 and len(before.errors) == 50  # nothing keyed without the outcomes pack
    assert {c["model"] for c in before.older} == {"Random Forest"} and len(before.reported) == 2
    after = run_table(table, "smoke", out=tmp_path, data_root=data_root, rows=["Random Forest"], seeds=1)
    assert after.older == [] and [c["seed"] for c in after.reported] == [0]  # not beside the older seed 1


def test_committed_cells_keep_their_keys_when_a_spec_field_is_added(data_root, tmp_path):
    """A NetworkSpec field added later (`stop_on`) is hashed only off its default, so the committed smoke
    references are still found by today's plan; a changed value is a different cell."""
    import shutil

    committed = Path(__file__).parents[1] / "results" / "smoke"
    for name in ("table7_uci.json", "table7_uci.outcomes.npz"):
        shutil.copy(committed / name, tmp_path / name)
    run = run_table(get_table("table7_uci"), "smoke", out=tmp_path, data_root=data_root, execute=False)
    assert run.records and not run.errors
    spec = next(s for s in plan(get_table("table7_uci"), get_table("table7_uci").profile("smoke"), 1, ["tuned"],
                                ["yeast"]) if s.network)
    changed = dataclasses.replace(spec, network=dataclasses.replace(spec.network, stop_on="train_loss"))
    assert "stop_on" not in spec.key_dict()["network"] and changed.key_dict() != spec.key_dict()


@pytest.mark.slow
def test_rows_presets_and_seeds_restrict_what_runs_not_what_is_reported(data_root, tmp_path, capsys):
    args = ["reproduce", "--table", "table5_semg", "--profile", "smoke", "--data-root", str(data_root),
            "--no-throughput", "--out", str(tmp_path), "--seeds", "1"]

    def reported():
        doc = json.loads((tmp_path / "table5_semg.json").read_text())
        return sorted((c["model"], c["preset"] or "classic", c["seed"]) for c in doc["cells"])

    assert main([*args, "--rows", "Random Forest", "--rows", "SVM (rbf)"]) == 0
    assert reported() == [("Random Forest", "classic", 0), ("SVM (rbf)", "classic", 0)]
    assert main([*args, "--rows", "Logistic Regression"]) == 0  # the report keeps the stored cells too
    assert len(reported()) == 3
    assert main([*args, "--rows", "DNN", "--preset", "paper"]) == 0
    assert main([*args[:-2], "--seeds", "2", "--rows", "DNN", "--preset", "tuned"]) == 0
    every = reported()
    assert [cell for cell in every if cell[0] == "DNN"] == [("DNN", "paper", 0), ("DNN", "tuned", 0),
                                                            ("DNN", "tuned", 1)]
    # one preset and one seed asked for, nothing left to run: the report still holds the other preset and seed
    assert main([*args, "--preset", "tuned", "--rows", "Random Forest"]) == 0
    assert reported() == every
    assert main([*args, "--rows", "Random Forrest"]) == 1
    assert "no row ['Random Forrest']" in capsys.readouterr().err
    assert json.loads((tmp_path / "table5_semg.json").read_text())["throughput"] == []  # --no-throughput: not timed


@pytest.mark.slow
def test_a_fresh_data_root_is_downloaded_verified_and_run(data_root, tmp_path, mirror, serve, capsys):
    """Nothing present at the start: `reproduce` fetches every file of its tables from a server with the
    official layout (UCI's files, sEMG's zip), refuses a corrupted transfer and fetches it again, then runs."""
    import io
    import zipfile

    from sharens.data import files

    uci = ["uci/letter-recognition.data", "uci/adult.data", "uci/adult.test", "uci/yeast.data"]
    semg_zip = io.BytesIO()
    with zipfile.ZipFile(semg_zip, "w") as zf:
        for rel in data.SOURCES["semg"].files:
            zf.writestr(f"Database 1/{rel.split('/')[1]}", (data_root / rel).read_bytes())
    mirror({**{files.MANIFEST[rel].url: (data_root / rel).read_bytes() for rel in uci},
            files.SEMG_ZIP_URL: semg_zip.getvalue()})
    server = serve.servers[-1]
    server.corrupt_once.add("/ml/machine-learning-databases/adult/adult.data")
    fresh = tmp_path / "fresh"
    args = ["reproduce", "--table", "table7_uci", "--table", "table5_semg", "--profile", "smoke", "--seeds", "1",
            "--rows", "DNN", "--data-root", str(fresh), "--out", str(tmp_path / "out"), "--no-throughput"]
    assert main([*args, "--dry-run"]) == 0  # a dry run fetches nothing: it says what a run would download
    planned = capsys.readouterr().out
    assert "would download letter: letter-recognition.data (0.7 MB)" in planned
    assert "semg: semg+for+basic+hand+movements.zip (size not published; the 5 files kept are 10.7 MB)" in planned
    assert not fresh.exists() and not server.requests
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "letter: not under" in out and "semg: not under" in out and "cells planned" in out
    for rel in [*uci, *data.SOURCES["semg"].files]:
        files.verify(rel, fresh)
    assert [path for path, _ in server.requests].count("/ml/machine-learning-databases/adult/adult.data") == 2
    for table in ("table7_uci", "table5_semg"):
        cells = json.loads((tmp_path / "out" / f"{table}.json").read_text())["cells"]
        assert {c["model"] for c in cells} == {"DNN"} and all(c["status"] == "ok" for c in cells)
    requests = len(server.requests)
    assert main(args) == 0 and len(server.requests) == requests  # all there now: nothing fetched again


def test_a_revision_is_dirty_when_code_changes_not_when_results_do(tmp_path):
    """Rebuilding one report changes the tracked results the next report's provenance would call dirty."""
    from sharens.provenance import git_revision

    def git(*args):
        return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path, check=True,
                              capture_output=True, text=True).stdout.strip()

    (tmp_path / "sharens").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "sharens" / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "table.md").write_text("old\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "start")
    head, package = git("rev-parse", "HEAD"), tmp_path / "sharens"
    assert git_revision(package) == head
    (tmp_path / "results" / "table.md").write_text("rebuilt\n")
    assert git_revision(package) == head
    (package / "code.py").write_text("x = 2\n")
    assert git_revision(package) == f"{head}-dirty"
