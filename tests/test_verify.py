"""`python -m sharens verify`: committed cells rerun here, their drift, and a changed verdict's exit code."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sharens import cli
from sharens.execution import executors
from sharens.model.evaluation import describe_outcomes
from sharens.suite.store import CellStore, Outcomes

RESULTS = Path(__file__).resolve().parent.parent / "results"


def _committed(tmp_path: Path, table: str, profile: str) -> Path:
    """A copy of a table's committed results, so that nothing a test does touches the repository's."""
    source = RESULTS if profile == "full" else RESULTS / profile
    folder = tmp_path / "committed"
    folder.mkdir()
    for name in (f"{table}.json", f"{table}.outcomes.npz"):
        shutil.copy(source / name, folder / name)
    return folder


def test_verify_reruns_a_reproducible_sample_and_reports_its_drift(data_root, tmp_path, capsys, monkeypatch):
    """At smoke, three cells drawn by seed 0 rerun on this CPU: each is compared with its committed self, the
    result is written, and a second run reuses the reruns it stored instead of training again."""
    results, out = _committed(tmp_path, "table7_uci", "smoke"), tmp_path / "verify"
    argv = ["verify", "--table", "table7_uci", "--profile", "smoke", "--sample", "3", "--results", str(results),
            "--out", str(out), "--data-root", str(data_root)]
    assert cli.main(argv) == 0  # smoke rows are not comparable with the paper: no verdict can change
    found = json.loads((out / "table7_uci.smoke.json").read_text())
    assert len(found["cells"]) == 3 and found["changes"] == [] and found["device"].endswith("(1 thread)")
    for cell in found["cells"]:
        assert cell["drift"] == pytest.approx(cell["rerun"] - cell["committed"])
        assert cell["identical"] or cell["test_rows_differ"] is not None
    assert "drift:" in capsys.readouterr().out

    def no_training(todo, *args, **kwargs):
        assert not todo, "a stored rerun was trained again"
        yield from ()

    monkeypatch.setitem(executors.EXECUTORS, "local", no_training)
    assert cli.main(argv) == 0 and json.loads((out / "table7_uci.smoke.json").read_text())["cells"] == found["cells"]
    monkeypatch.undo()
    assert cli.main([*argv[:-4], "--seed", "1", "--out", str(tmp_path / "other"), "--data-root", str(data_root)]) == 0
    other = json.loads((tmp_path / "other" / "table7_uci.smoke.json").read_text())
    assert {c["key"] for c in other["cells"]} != {c["key"] for c in found["cells"]}  # the seed draws the sample


@pytest.mark.slow
def test_a_changed_verdict_makes_verify_exit_non_zero(data_root, tmp_path, capsys, monkeypatch):
    """A machine on which the cheapest committed cells of Table 7 at full got every test row right (an executor
    that returns them so, instead of training) changes verdicts: the command lists them and exits 1."""
    results = _committed(tmp_path, "table7_uci", "full")
    store = CellStore(results, "table7_uci", "full")

    def perfect(todo, device, data_root, jobs, checkpoints):
        for spec, key in todo:
            record = store.load(spec, key)
            rows = Outcomes.from_store(store, [record]).get(record)
            arrays = {"y": rows["y"], "predicted": rows["y"].copy()}
            yield spec, key, ({**record, "accuracy": 100.0, "metrics": {**record["metrics"], "accuracy": 100.0},
                               "outcomes": describe_outcomes(arrays)}, arrays)

    monkeypatch.setitem(executors.EXECUTORS, "local", perfect)
    code = cli.main(["verify", "--table", "table7_uci", "--sample", "8", "--cheapest", "--results", str(results),
                     "--out", str(tmp_path / "verify"), "--data-root", str(data_root)])
    printed = capsys.readouterr().out
    assert code == 1 and "verdicts would change" in printed
    found = json.loads((tmp_path / "verify" / "table7_uci.full.json").read_text())
    assert found["changes"] and all(c["rerun"] != c["committed"] for c in found["changes"])
    assert all(np.isclose(c["rerun"], 100.0) for c in found["cells"])


def test_verify_refuses_a_bad_sample_size(capsys):
    assert cli.main(["verify", "--table", "table7_uci", "--sample", "0"]) == 2
    assert "--sample must be at least 1" in capsys.readouterr().err
