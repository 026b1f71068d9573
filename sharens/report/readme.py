"""README's results block, written from the result documents: no result number in README is typed by hand.

The block sits between two markers in README.md. `update` rewrites it whenever a `full` or `quick` report is
written (with the site's pages), and `python -m sharens site` rewrites it with them; a test fails when the
committed README is not what the committed results give.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from sharens.atomic import write_bytes
from sharens.judge import claims
from sharens.judge.document import fragile, judged
from sharens.report import site

BEGIN = "<!-- results: written by `python -m sharens site` from results/; edits here are overwritten -->"
END = "<!-- end of results -->"


VERDICTS = ("reproduced", "not reproduced (below)", "not reproduced (above)", "inconclusive")


def _short(title: str) -> str:
    """'Table 7: UCI LETTER / ADULT / YEAST, test accuracy (%)' -> 'Table 7'."""
    return title.split(":")[0]


def _shown(reports: list[tuple[Path, dict]]) -> list[tuple[Path, dict]]:
    """Each table once: its `full` report, else its `quick` one, in the tables' order."""
    by_table: dict[str, tuple[Path, dict]] = {}
    for path, doc in reports:
        if doc["table"] not in by_table or doc["profile"] == "full":
            by_table[doc["table"]] = (path, doc)
    return list(by_table.values())


def _rows_line(link: str, doc: dict) -> str:
    """The table's rows with a paper number: how many got each verdict, and how many no verdict (and why not)."""
    rows, _ = site.verdicts(doc)
    counted = [f"{rows[v]} {v}" for v in VERDICTS if rows[v]]
    other = sum(n for name, n in rows.items() if name not in VERDICTS and name != "no paper number")
    seeds = len(doc["provenance"]["seeds"])
    return (f"| {link} | `{doc['profile']}`, {seeds} seed{'s' * (seeds > 1)} | rows | | | "
            + ", ".join(counted + ([f"{other} without a verdict"] if other else [])) + " |")


def _claim_lines(link: str, doc: dict) -> list[str]:
    """One line per claim of the paper's with a paper number (at `full` only: other profiles are not comparable)."""
    lines = []
    for c in doc["claims"]:
        if not claims.kind(c).paper or c["paper_gain"] is None or doc["profile"] != "full":
            continue
        g = c["gain"]
        interval = f" [{g['ci95'][0]:+.2f}, {g['ci95'][1]:+.2f}]" if g.get("ci95") else ""
        lines.append(f"| {link} | `full`, {g['n']} seeds | SE − baseline, {c['pair']} ({c['preset']}, {c['dataset']}) "
                     f"| {c['paper_gain']:+.2f} | {g['mean']:+.2f}{interval} | {c['verdict']} |")
    return lines


def _cost_line(docs: list[dict]) -> str:
    """SE's training step against its baseline's, over every table's pairs and devices."""
    found = [c for doc in docs for m in doc.get("throughput") or [] for c in m["claims"]
             if c["claim"] == "se_train_step"]
    if not found:
        return ""
    counts = Counter(c["verdict"] for c in found)
    ratios = [c["ratio"] for c in found]
    return (f"SE's training step over its baseline's, {len(found)} pairs measured: "
            f"{min(ratios):.2f}-{max(ratios):.2f}x; " + ", ".join(f"{n} {v}" for v, n in counts.most_common())
            + " (each report's Throughput section).")


def _drift_lines(root: Path) -> list[str]:
    """The measured drift of `python -m sharens verify` runs (results/verify/*.json), one line each."""
    lines = []
    for path in sorted((root / "verify").glob("*.json")):
        v = json.loads(path.read_text())
        d = v["drift"]
        lines.append(f"{v['table']} (`{v['profile']}`): {d['cells']} committed cells rerun on {v['device']}: "
                     f"{d['identical']} identical, drift median {d['median_abs_drift']:.2f}, max "
                     f"{d['max_abs_drift']:.2f} points; {len(v['changes'])} verdicts changed.")
    return lines


def block(root: Path) -> str:
    """The results block for the results tree `root` (the repository's `results/`)."""
    reports = site.reports_under(root)
    shown = _shown(reports)
    lines = [BEGIN, "", "| Table | Run | Row or claim | Paper | Ours [95% interval] | Verdict |",
             "|---|---|---|---|---|---|"]
    for path, doc in shown:
        link = f"[{_short(doc['title'])}]({path.with_suffix('.md').relative_to(root.parent).as_posix()})"
        lines += [_rows_line(link, doc), *_claim_lines(link, doc)]
    notes = []
    method = next((doc["interval_method"] for _, doc in reports if "interval_method" in doc), None)
    if method:
        totals = [(len(fragile(doc)), judged(doc)) for _, doc in reports if "interval_method" in doc]
        notes.append(f"Intervals cover at least {100 * method['min_coverage']:.1f}% of the truth in simulation at "
                     f"2-10 seeds ([docs/verdicts.md](docs/verdicts.md)); {sum(f for f, _ in totals)} of "
                     f"{sum(j for _, j in totals)} verdicts would change under another interval method.")
    notes += [line for line in [_cost_line([doc for _, doc in shown]), *_drift_lines(root)] if line]
    lines += [""] + [f"- {note}" for note in notes] if notes else []
    return "\n".join(lines + ["", END])


def update(readme: Path, root: Path) -> bool:
    """Rewrite README's results block from `root`; False when README has no block (a results tree elsewhere)."""
    readme = Path(readme)
    if not readme.is_file():
        return False
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        return False
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    new = head + block(root) + tail
    if new != text:
        write_bytes(readme, new.encode())
    return True
