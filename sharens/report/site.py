"""The results as a static web site: `index.html` with every table's verdicts, and a page per table.

A table's page is its markdown report rendered to HTML (markdown-it-py: CommonMark, with tables), so the
page and the markdown cannot say different things; it shows the same PNG plots, which sit beside both.
The index is built from the tables' JSON documents: per table and profile, how many rows and claims got
each verdict or health status. The documentation pages (`docs/*.md` beside the results tree) are rendered into
`docs/` under it and listed on the index, so one `index.html` holds both. Static files only, no script: a
folder of results opens in any browser.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from markdown_it import MarkdownIt

from sharens.atomic import write_bytes
from sharens.judge import claims
from sharens.judge.claims import CLAIMS
from sharens.judge.document import fragile, judged, row_status

# the profiles a site shows and where a results tree keeps each (see cli._out): `full` at its root, `quick`
# under it; smoke is CI's check and has no pages
PROFILE_FOLDERS = {"full": ".", "quick": "quick"}
FOLDERS = tuple(PROFILE_FOLDERS.values())
STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 78rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
img { max-width: 100%; }
code { background: #f3f3f3; padding: 0 0.2rem; }
nav { margin-bottom: 1rem; }
.reproduced { color: #17612b; } .below, .above { color: #a31515; } .inconclusive { color: #7a5b00; }
"""
_MARKDOWN = MarkdownIt("commonmark").enable("table")


def page(title: str, body: str, up: str | None = None) -> str:
    """A whole HTML page: `body` (HTML) under `title`, with a link `up` to the index if given."""
    nav = f'<nav><a href="{html.escape(up)}">all tables</a></nav>\n' if up else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>'
            f"\n<style>{STYLE}</style>\n</head>\n<body>\n{nav}{body}</body>\n</html>\n")


def root_of(out: Path, profile: str) -> Path:
    """The root of the results tree that a report folder of `profile` belongs to (a folder given as --out that
    is not named for its profile is a root of its own)."""
    out = Path(out)
    return out.parent if PROFILE_FOLDERS[profile] != "." and out.name == PROFILE_FOLDERS[profile] else out


def reports_under(root: Path) -> list[tuple[Path, dict]]:
    """(JSON path, document) of every table report in the site's folders, in profile then name order."""
    found = []
    for folder in FOLDERS:
        for path in sorted((root / folder).glob("*.json")):
            doc = json.loads(path.read_text())
            if isinstance(doc, dict) and "rows" in doc and path.with_suffix(".md").is_file():
                found.append((path, doc))
    return found


def verdicts(doc: dict) -> tuple[Counter, dict[str, Counter]]:
    """(rows, {claim: claims}) of a table's document, counted by verdict; a row or claim without a verdict
    counts by its health status or why not (cited rows are left out), a planned row without cells as not run."""
    rows = Counter(r.get("verdict") or (status if (status := row_status(r)) != "ok" else "no paper number")
                   for r in doc["rows"] if r["variant"] != "cited")
    if doc.get("not_run"):
        rows["not run"] = len(doc["not_run"])
    by_claim = {name: Counter(c["verdict"] for c in doc["claims"] if claims.kind(c).name == name)
                for name in CLAIMS}
    return rows, by_claim


def _counts(counter: Counter) -> str:
    """Verdicts first (reproduced, not, inconclusive), then health statuses, then rows with nothing to compare."""
    if not counter:
        return "not run"
    order = ["reproduced", "holds", "within tolerance", "not reproduced", "not reproduced (above)",
             "not reproduced (below)", "reversed", "exceeds", "falls short", "inconclusive"]

    def rank(item):
        name, n = item
        return (order.index(name) if name in order else len(order) + (name == "no paper number"), -n, name)

    return ", ".join(f'<span class="{_css(name)}">{html.escape(name)}: {n}</span>'
                     for name, n in sorted(counter.items(), key=rank))


def throughput_verdicts(doc: dict) -> Counter:
    """A document's cost claims (`sharens.judge.throughput`), counted by verdict over pairs and devices."""
    return Counter(c["verdict"] for m in doc.get("throughput") or [] for c in m["claims"])


def _fragile(doc: dict) -> str:
    """How many of a document's interval-decided verdicts another method would change (documents from before
    the sensitivity line say nothing)."""
    if "interval_method" not in doc:
        return ""
    return f"{len(fragile(doc))} of {judged(doc)}"


def _css(verdict: str) -> str:
    for word in ("below", "above"):
        if verdict.endswith(f"({word})"):
            return word
    return {"reproduced": "reproduced", "holds": "reproduced", "within tolerance": "reproduced",
            "not reproduced": "below", "reversed": "below", "exceeds": "below", "falls short": "below",
            "inconclusive": "inconclusive"}.get(verdict, "status")


def write(root: Path, docs: Path | None = None) -> Path:
    """`root/index.html`, a page beside every table report under `root` (its folders: `FOLDERS`) and one under
    `root/docs/` for every documentation page in `docs` (default: the `docs/` folder beside `root`, if any);
    returns the index."""
    root = Path(root)
    reports = reports_under(root)
    for path, doc in reports:
        page_path = path.with_suffix(".html")
        up = os.path.relpath(root / "index.html", page_path.parent)
        body = _MARKDOWN.render(path.with_suffix(".md").read_text())
        write_bytes(page_path, page(doc["title"], body, Path(up).as_posix()).encode())
    docs = Path(docs) if docs is not None else root.resolve().parent / DOCS
    guides = _write_docs(docs, root / DOCS) if docs.is_dir() else []
    return _write_index(root, reports, guides)


DOCS = "docs"  # the documentation's folder, beside the results tree and inside the site
_MD_LINK = re.compile(r'href="([^":#]+)\.md(#[^"]*)?"')


def _write_docs(source: Path, target: Path) -> list[tuple[str, str]]:
    """Every `source/*.md` rendered to `target/*.html` (links between the pages follow them); (title, page name)
    of each, in name order."""
    written = []
    for path in sorted(source.glob("*.md")):
        text = path.read_text()
        title = text.splitlines()[0].lstrip("# ").strip() if text else path.stem
        body = _MD_LINK.sub(lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', _MARKDOWN.render(text))
        write_bytes(target / f"{path.stem}.html", page(title, body, "../index.html").encode())
        written.append((title, f"{path.stem}.html"))
    return written


def _write_index(root: Path, reports: list[tuple[Path, dict]], guides: list[tuple[str, str]]) -> Path:
    """`root/index.html`: every table report, its verdicts counted, linked to its page; then the documentation."""
    lines = ["<h1>sharens: which of the papers' claims hold</h1>",
             "<p>Each row of a table is <em>reproduced</em> when the 95% interval of our accuracy (over seeds "
             "and test rows) lies within the paper's number ± the table's tolerance, <em>not reproduced</em> "
             "(above or below) when it lies wholly outside, and <em>inconclusive</em> otherwise; a row or "
             "claim that rests on an unhealthy cell (collapsed, diverged, under-trained) gets that status "
             "instead. Claims compare SE with an alternative on the same seeds and test rows (paired), "
             "Holm-corrected within a table's family (the paper's claims; the suite's controls): "
             + "; ".join(f"<em>{html.escape(c.title)}</em> ({html.escape(c.description)})" for c in CLAIMS.values())
             + ". <em>Throughput</em>: SE's training step and prediction over its baseline's, and an independent "
               "ensemble's training step over SE's, measured in paired rounds on each device and judged against "
               "the table's tolerances. <em>Fragile verdicts</em>: how many verdicts another interval method would "
               "change (each page names them). Each page gives the evidence.</p>"]
    for profile in dict.fromkeys(doc["profile"] for _, doc in reports):
        docs = [(path, doc) for path, doc in reports if doc["profile"] == profile]
        made = {claims.kind(claim).name for _, doc in docs for claim in doc["claims"]}
        shown = [c for c in CLAIMS.values() if c.name in made]
        lines += [f"<h2>Profile <code>{html.escape(profile)}</code></h2>", "<table>",
                  "<tr><th>table</th><th>rows</th>" + "".join(f"<th>claim: {html.escape(c.title)}</th>" for c in shown)
                  + "<th>throughput</th><th>fragile verdicts</th><th>cells</th></tr>"]
        for path, doc in docs:
            rows, by_claim = verdicts(doc)
            link = path.with_suffix(".html").relative_to(root).as_posix()
            lines.append(f'<tr><td><a href="{html.escape(link)}">{html.escape(doc["title"])}</a></td>'
                         f"<td>{_counts(rows)}</td>" + "".join(f"<td>{_counts(by_claim[c.name])}</td>" for c in shown)
                         + f"<td>{_counts(throughput_verdicts(doc))}</td><td>{_fragile(doc)}</td>"
                         f"<td>{len(doc['cells'])}</td></tr>")
        lines.append("</table>")
    lines.append("<p>Each table's report is also in markdown (<code>&lt;table&gt;.md</code>) and JSON "
                 "(<code>&lt;table&gt;.json</code>) beside its page.</p>")
    if guides:
        items = [f'<li><a href="{DOCS}/{html.escape(name)}">{html.escape(title)}</a></li>' for title, name in guides]
        lines += ["<h2>Documentation</h2>", "<ul>", *items, "</ul>"]
    index = root / "index.html"
    write_bytes(index, page("sharens results", "\n".join(lines) + "\n").encode())
    return index


# headless Chromium on a machine without a network or a display: no background connections, a fresh profile
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars")


def screenshot(index: Path, browser: str = "chromium", size: tuple[int, int] = (1400, 1100)) -> Path:
    """`index.screenshot.png` beside `index`, as headless Chromium renders it: what a reader sees."""
    executable = shutil.which(browser)
    if executable is None:
        raise RuntimeError(f"no {browser!r} on PATH: install a Chromium (Debian: apt-get install chromium) or "
                           "name one with --browser")
    path = Path(index).with_suffix(".screenshot.png")
    with tempfile.TemporaryDirectory() as scratch:
        shot = Path(scratch) / "shot.png"
        subprocess.run([executable, *BROWSER_FLAGS, f"--user-data-dir={scratch}/profile",
                        f"--window-size={size[0]},{size[1]}", f"--screenshot={shot}", Path(index).resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
        write_bytes(path, shot.read_bytes())
    return path
