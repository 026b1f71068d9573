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
from sharens.judge import claims, throughput
from sharens.judge.document import fragile, judged
from sharens.report import site

BEGIN = "<!-- results: written by `python -m sharens site` from results/; edits here are overwritten -->"
END = "<!-- end of results -->"


def _num(x: float | None, signed: bool = False) -> str:
    return "" if x is None else (f"{x:+.2f}" if signed else f"{x:.2f}")


def _short(title: str) -> str:
    """'Table 7: UCI LETTER / ADULT / YEAST, test accuracy (%)' -> 'Table 7'."""
    return title.split(":")[0]


def _verdict_counts(doc: dict) -> str:
    rows, _ = site.verdicts(doc)
    shown = Counter({k: v for k, v in rows.items() if k != "no paper number"})
    return ", ".join(f"{name} {n}" for name, n in sorted(shown.items(), key=lambda kv: (-kv[1], kv[0])))


def _cost_claims(doc: dict) -> dict[str, list[dict]]:
    """{claim title: its judged entries over the document's pairs and devices} (`sharens.judge.throughput`)."""
    found: dict[str, list[dict]] = {}
    for m in doc.get("throughput") or []:
        for c in m["claims"]:
            found.setdefault(f"{throughput.COST_CLAIMS[c['claim']].short} ({m['device']})", []).append(c)
    return found


def _table_lines(root: Path, path: Path, doc: dict) -> list[str]:
    """One line for the table's rows, then (at `full`) one per claim of the paper's that it gave a number for."""
    link = path.with_suffix(".md").relative_to(root.parent).as_posix()
    title = f"[{_short(doc['title'])}]({link})"
    seeds = len(doc["provenance"]["seeds"])
    lines = [f"| {title} | `{doc['profile']}`: rows with a paper number ({seeds} seed{'s' * (seeds > 1)}) | | | | "
             f"{_verdict_counts(doc)} |"]
    for claim, found in _cost_claims(doc).items():
        ratios = [c["ratio"] for c in found]
        verdicts = Counter(c["verdict"] for c in found)
        lines.append(f"| {title} | cost: {claim} ({len(found)} pair{'s' * (len(found) > 1)}) | | "
                     f"{min(ratios):.2f}-{max(ratios):.2f}x | | "
                     + ", ".join(f"{v} {n}" for v, n in sorted(verdicts.items(), key=lambda kv: -kv[1])) + " |")
    for c in doc["claims"]:
        if not claims.kind(c).paper or c["paper_gain"] is None or doc["profile"] != "full":
            continue
        g = c["gain"]
        interval = f"[{g['ci95'][0]:+.2f}, {g['ci95'][1]:+.2f}]" if g.get("ci95") else ""
        verdict = c["verdict"] + (f", {c['magnitude']}" if c.get("magnitude") else "")
        lines.append(f"| {title} | SE − baseline, {c['pair']} ({c['preset']}, {c['dataset']}) | "
                     f"{_num(c['paper_gain'], signed=True)} | {_num(g['mean'], signed=True)} (n={g['n']}) | "
                     f"{interval} | {verdict} |")
    return lines


def _drift_lines(root: Path) -> list[str]:
    """The measured drift of `python -m sharens verify` runs (results/verify/*.json), one line each."""
    found = [json.loads(p.read_text()) for p in sorted((root / "verify").glob("*.json"))]
    if not found:
        return []
    lines = ["", "Committed cells rerun on another CPU (`python -m sharens verify`; per cell in "
             "`results/verify/`):", "",
             "| Table | Cells | Committed on | Rerun on | Identical | Stopped at another epoch "
             "| Drift, median / max of its size (points) | Verdicts changed |", "|---|---|---|---|---|---|---|---|"]
    for v in found:
        d = v["drift"]
        lines.append(f"| {v['table']} ({v['profile']}) | {d['cells']} | {', '.join(v['committed_devices'])} | "
                     f"{v['device']} | {d['identical']} | {d['other_epochs']} | {d['median_abs_drift']:.2f} / "
                     f"{d['max_abs_drift']:.2f} | {len(v['changes'])} |")
    return lines


def block(root: Path) -> str:
    """The results block for the results tree `root` (the repository's `results/`)."""
    reports = site.reports_under(root)
    lines = [BEGIN, "", "| Table | Row or claim | Paper | Ours | 95% interval | Verdict |", "|---|---|---|---|---|---|"]
    for profile in dict.fromkeys(doc["profile"] for _, doc in reports):
        for path, doc in reports:
            if doc["profile"] == profile:
                lines += _table_lines(root, path, doc)
    totals = [(len(fragile(doc)), judged(doc)) for _, doc in reports if "interval_method" in doc]
    method = next((doc["interval_method"] for _, doc in reports if "interval_method" in doc), None)
    if method:
        lines += ["", f"Intervals: {method['description']}; {method['coverage']}. Fragile verdicts, which "
                  f"another interval method would change: {sum(f for f, _ in totals)} of {sum(j for _, j in totals)} "
                  "(each report names them)."]
    lines += _drift_lines(root)
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
