"""The CI regression check: what it compares, and the smoke run it keeps for the slow tests."""

import json
import shutil
from pathlib import Path

import pytest

from sharens import regress

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "smoke"


def test_compare_flags_moves_and_status_changes():
    doc = json.loads((REFERENCE / "table7_uci.json").read_text())
    assert regress.compare(doc, doc, 5.0) == []
    moved = json.loads(json.dumps(doc))
    row = next(r for r in moved["rows"] if r["variant"] == "se")
    row["accuracy"]["mean"] += 6
    assert len(regress.compare(doc, moved, 5.0)) == 1
    row["status"] = "diverged"
    assert "status" in regress.compare(doc, moved, 5.0)[0]


def test_compare_throughput_flags_a_ratio_the_run_did_not_measure():
    doc = json.loads((REFERENCE / "table7_uci.json").read_text())
    watched = [c for m in doc["throughput"] for c in m["claims"] if c["claim"] in regress.WATCHED]
    assert watched and regress.compare_throughput(doc, doc) == []
    problems = regress.compare_throughput(doc, {**doc, "throughput": []})
    assert len(problems) == len(watched) and all("not measured by this run" in line for line in problems)


@pytest.fixture
def replayed(monkeypatch):
    """regress over Table 7 alone, its smoke run replaced by the reference's document (plus `moved` points on
    the first SE row), so what regress does with a run is checked in seconds."""
    calls, moved = [], {"points": 0.0}

    def reproduce(argv):
        calls.append(argv)
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        doc = json.loads((REFERENCE / "table7_uci.json").read_text())
        next(r for r in doc["rows"] if r["variant"] == "se")["accuracy"]["mean"] += moved["points"]
        (out / "table7_uci.json").write_text(json.dumps(doc))
        return 0

    monkeypatch.setattr(regress, "TABLES", ("table7_uci",))
    monkeypatch.setattr(regress.cli, "main", reproduce)
    return calls, moved


def test_regress_runs_the_reproduce_command_and_keeps_the_run_where_asked(replayed, tmp_path, capsys):
    calls, _ = replayed
    assert regress.main(["--jobs", "2", "--out", str(tmp_path / "kept")]) == 0
    assert calls == [["reproduce", "--table", "table7_uci", "--profile", "smoke", "--device", "cpu", "--out",
                      str(tmp_path / "kept"), "--jobs", "2"]]
    assert (tmp_path / "kept" / "table7_uci.json").is_file()
    assert capsys.readouterr().out.startswith("ok   table7_uci: 126 cells")


def test_regress_fails_on_a_moved_row(replayed, capsys):
    _, moved = replayed
    moved["points"] = 6.0
    assert regress.main([]) == 1
    assert "FAIL table7_uci" in capsys.readouterr().out


def test_regress_refuses_a_folder_with_stored_cells(tmp_path, capsys):
    shutil.copy(REFERENCE / "table7_uci.json", tmp_path / "table7_uci.json")
    with pytest.raises(SystemExit) as exit_:
        regress.main(["--out", str(tmp_path)])
    assert exit_.value.code == 2 and "is not empty" in capsys.readouterr().err
