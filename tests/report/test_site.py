"""The static site (`sharens.report.site`): the committed pages are current, and every link and image resolves."""

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import pytest

from sharens.report import site

RESULTS = Path(__file__).resolve().parents[2] / "results"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag, attrs):
        wanted = {"a": "href", "img": "src", "link": "href", "script": "src"}.get(tag)
        self.targets += [value for name, value in attrs if name == wanted and value]


def broken_links(root: Path) -> list[str]:
    """'page: target' for every link or image of every page under `root` that does not resolve to a file."""
    broken = []
    for page in sorted(root.rglob("*.html")):
        parser = _Links()
        parser.feed(page.read_text())
        for target in parser.targets:
            parsed = urlparse(target)
            if parsed.scheme or parsed.netloc:
                broken.append(f"{page.relative_to(root)}: {target} (leaves the site)")
            elif not (page.parent / parsed.path).resolve().is_file():
                broken.append(f"{page.relative_to(root)}: {target}")
    return broken


def _reports_copy(tmp_path: Path) -> Path:
    """The committed reports (JSON, markdown, plots) of the site's folders, without their pages."""
    for folder in site.FOLDERS:
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        for path in (RESULTS / folder).iterdir():
            if path.suffix in (".json", ".md", ".png"):
                shutil.copy(path, tmp_path / folder / path.name)
    return tmp_path


def test_committed_pages_are_current_and_every_link_resolves(tmp_path):
    built = _reports_copy(tmp_path)
    site.write(built, docs=RESULTS.parent / "docs")
    pages = sorted(p.relative_to(built) for p in built.rglob("*.html"))
    assert {Path("index.html"), Path("table7_uci.html"), Path("quick/figure2_mnist.html"),
            Path("docs/verdicts.html")} <= set(pages)
    stale = [str(p) for p in pages
             if not (RESULTS / p).is_file() or (RESULTS / p).read_text() != (built / p).read_text()]
    assert not stale, f"pages out of date with the reports: {stale}; run `python -m sharens site`"
    assert not broken_links(RESULTS)
    assert (RESULTS / "index.screenshot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_missing_plot_or_page_is_found(tmp_path):
    built = _reports_copy(tmp_path)
    site.write(built)
    assert not broken_links(built)
    (built / "table7_uci.png").unlink()
    (built / "quick" / "table6_imdb.html").unlink()
    assert broken_links(built) == ["index.html: quick/table6_imdb.html", "table7_uci.html: table7_uci.png"]


def test_the_index_counts_each_tables_verdicts(tmp_path):
    built = _reports_copy(tmp_path)
    index = site.write(built).read_text()
    for path in built.glob("*.json"):
        assert f'href="{path.stem}.html"' in index
    assert "reproduced: " in index and "Profile <code>quick</code>" in index
    doc = {"rows": [], "claims": [], "not_run": [{"dataset": "cifar10", "model": "Deep CNN", "paper": 83.0}]}
    assert site.verdicts(doc)[0] == {"not run": 1}


@pytest.mark.slow
def test_writing_a_report_rewrites_the_pages_of_its_tree(tmp_path):
    """A quick report written into `<tree>/quick` refreshes the tree's index and its own page."""
    from sharens.cli import main

    assert main(["report", "--table", "table6_imdb", "--source", str(RESULTS / "quick" / "table6_imdb.json"),
                 "--out", str(tmp_path / "quick")]) == 0
    assert 'href="quick/table6_imdb.html"' in (tmp_path / "index.html").read_text()
    assert (tmp_path / "quick" / "table6_imdb.html").read_text().count("<table>") >= 1
    assert not broken_links(tmp_path)


def test_readmes_results_block_is_what_the_committed_results_give():
    """README's results are written from the result documents (`sharens.report.readme`), never typed: a change to a
    report without `python -m sharens site` fails here."""
    from sharens.report import readme

    text = (RESULTS.parent / "README.md").read_text()
    assert readme.BEGIN in text and readme.END in text
    committed = readme.BEGIN + text.split(readme.BEGIN, 1)[1].split(readme.END, 1)[0] + readme.END
    assert committed == readme.block(RESULTS), "README's results block is stale: run `python -m sharens site`"


def test_the_documentation_pages_join_the_site_with_their_links_followed(tmp_path):
    docs, root = tmp_path / "docs", tmp_path / "results"
    docs.mkdir()
    (docs / "first.md").write_text("# First page\n\nSee [the second](second.md#part) and [the first](first.md).\n")
    (docs / "second.md").write_text("# Second page\n\n## Part\n")
    root.mkdir()
    index = site.write(root)  # docs/ beside the results tree is found
    assert (root / "docs" / "first.html").is_file() and (root / "docs" / "second.html").is_file()
    assert 'href="second.html#part"' in (root / "docs" / "first.html").read_text()
    assert 'href="docs/first.html">First page</a>' in index.read_text()
    assert not broken_links(root)
    (docs / "first.md").write_text("# First page\n\n[gone](missing.md)\n")
    site.write(root)
    assert broken_links(root) == ["docs/first.html: missing.html"]


def test_readme_fits_a_screen_or_two_and_every_link_resolves():
    """README answers on its first screens (at most 200 lines); every relative link it holds reaches a file."""
    readme = RESULTS.parent / "README.md"
    text = readme.read_text()
    assert len(text.splitlines()) <= 200
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    assert len(targets) > 10
    broken = [t for t in targets if not urlparse(t).scheme and not (readme.parent / urlparse(t).path).is_file()]
    assert not broken, f"README links that reach no file: {broken}"
