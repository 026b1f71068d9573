"""A table's result document -> `<table>.md` for people, beside `<table>.json` and its plots.

`write` builds the document (`sharens.judge.document`), writes the JSON, packs the
cells' per-row outcomes into `<table>.outcomes.npz`, draws the plots, and
renders the markdown from the document alone.
"""

from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from sharens.atomic import write_bytes, write_json
from sharens.judge import document, stats
from sharens.model.ensemble import DEFAULT_INIT, DEFAULT_INIT_MEANING
from sharens.report import plots, readme, site
from sharens.report.sections import SECTIONS, interval, pct
from sharens.suite.store import Outcomes, as_written
from sharens.suite.table import Table
from sharens.train.presets import describe


def _accuracy_cell(row: dict) -> str:
    a = row["accuracy"]
    if a is None:
        return "cited, not re-run"
    if not a["n"]:
        return "no finished run"
    std = f" ± {a['std']:.2f}" if a["std"] is not None else ""
    return f"{a['mean']:.2f}{std} (n={a['n']})"


def _rate(x: float | None) -> str:
    return "" if x is None else f"{x:,.0f}"


def _seed_note(table: Table, doc: dict) -> str:
    planned = table.profiles[doc["profile"]].seeds
    ran = len(doc["provenance"]["seeds"])
    return f" ({ran} of the profile's {planned}, chosen with --seeds)" if ran != planned else ""


def markdown(doc: dict, table: Table) -> str:
    prov = doc["provenance"]
    lines = [
        f"# {doc['title']}",
        "",
        f"Profile **{doc['profile']}**, seeds {prov['seeds']}{_seed_note(table, doc)}, "
        f"device {', '.join(prov['devices'])}, "
        f"cells run at git {', '.join(g[:12] + g[40:] for g in prov['cell_git_revisions'])}, "
        f"torch {prov['versions']['torch']}. "
        f"Compute, summed over cells: {prov['cell_wall_seconds_total'] / 60:.1f} min ("
        + ", ".join(f"{k} {v / 60:.1f} min" for k, v in prov["cell_wall_seconds_by_preset"].items()) + "). "
        f"Accuracies are test accuracy in %, mean ± sample std over seeds, with a 95% interval over seeds and "
        f"test rows. A row counts as reproduced when that interval lies within ±{doc['tolerance']:g} points of "
        "the paper (rules at the end).",
        "",
    ]
    if len(prov["cell_git_revisions"]) > 1:
        lines += [f"**Mixed revisions:** the cells behind this table ran at {len(prov['cell_git_revisions'])} "
                  "git revisions (listed above); rows may mix code versions. Rerun with `--force` for one.", ""]
    seeds = len(prov["seeds"])
    partial = [f"{r['model']} ({r['preset']}, {r['dataset']}): {r['accuracy']['n']}" for r in doc["rows"]
               if r.get("accuracy") and 0 < r["accuracy"]["n"] < seeds]
    if partial:
        lines += [f"**Incomplete:** these rows have fewer of the {seeds} seeds than the others (a run cut short or "
                  f"still going); their intervals and verdicts rest on the seeds listed: {'; '.join(partial)}.", ""]
    if doc.get("not_run"):
        missing = "; ".join(f"{r['model']} ({r['dataset']}" + ("" if r["paper"] is None else f", paper {r['paper']:g}")
                            + ")" for r in doc["not_run"])
        lines += [f"**Not run:** the {doc['profile']} profile plans these rows, and no cell of this report stands "
                  f"for them yet, so they have no verdict: {missing}.", ""]
    if doc["cells_without_outcomes"]:
        lines += [f"**Older cells:** {doc['cells_without_outcomes']} finished cells of this table come from runs "
                  "that kept no per-row outcomes; statistics over test rows need those cells rerun.", ""]
    if doc.get("interval_method"):
        fragile = document.fragile(doc)
        lines += [f"**Sensitivity:** {len(fragile)} of the {document.judged(doc)} verdicts that an interval decides "
                  "would change under another interval method"
                  + (": " + "; ".join(f"{f['what']}" for f in fragile) if fragile else "")
                  + " (see 'How fragile are the verdicts?').", ""]
    if table.question:
        lines += [f"**The question:** {table.question}", ""]
    if any(r.get("verdict") == stats.NOT_COMPARABLE for r in doc["rows"]):
        splits = ", ".join(f"{d} {a:,}/{b:,}" for d, (a, b) in table.paper_split.items())
        lines += [f"**Not comparable with the paper:** this run's train/test sizes (in each heading) differ from "
                  f"the paper's ({splits}), so its rows test the pipeline, not the paper's numbers.", ""]
    for dataset in table.datasets:
        rows = [r for r in doc["rows"] if r["dataset"] == dataset]
        if not rows:
            continue
        info = doc["data"].get(dataset) or {}
        lines += [f"## {dataset} (train {info.get('n_train', '?')}, test {info.get('n_test', '?')})", ""]
        body = [[
            r["model"] + (f" {r['quoted_from']}" if r.get("quoted_from") else ""),
            r.get("preset") or "",
            pct(r["paper"]), _accuracy_cell(r), interval(r.get("interval")), pct(r.get("delta"), signed=True),
            r.get("verdict") or "", document.row_status(r),
            _rate(r.get("train_samples_per_s")),
            "" if r.get("train_seconds") is None else f"{r['train_seconds']:.1f}",
            _rate(r.get("params")),
        ] for r in rows]
        lines += [tabulate(body, headers=["Model", "Preset", "Paper", "Ours", "95% interval", "Δ", "Verdict",
                                          "Status", "Train samples/s", "Train s", "Params"], tablefmt="github"), ""]
    for section in SECTIONS:
        lines += section(doc)
    lines += ["## Settings", ""]
    for name, preset in sorted(doc["presets"].items()):
        lines.append(f"- Preset `{name}`: {describe(preset)}; {preset['why']}.")
    profile = table.profiles[doc["profile"]]
    lines.append(f"- Profile `{profile.name}`: {profile.description}")
    for pair in (p for p in table.pairs if profile.runs(p.name)):
        lines.append(f"- {pair.name}: backbone `{pair.backbone}` {dict(pair.options)}"
                     + (f", per data set {dict(pair.dataset_options)}" if pair.dataset_options else "")
                     + (f", preset changes {dict(pair.preset_changes)}" if pair.preset_changes else "")
                     + f"; SE puts {pair.heads_per_tap} heads on every tap.")
    if table.classic:
        lines.append("- scikit-learn rows: " + ", ".join(
            f"{c.name} (`{c.estimator}`" + (f" on the `{c.inputs}` view" if c.inputs else "") + ")"
            for c in table.classic) + "; see `sharens/model/classic.py` for their settings.")
    networks = [c["spec"].get("network") or {} for c in doc["cells"]]
    speeds = sorted({", ".join(sorted(n.get("speed") or {})) for n in networks} - {""})
    if speeds:
        lines.append(f"- Device options of the networks' cells: {'; '.join(speeds)} (see `sharens.train.loop.Speed`).")
    if table.augment:
        lines.append(f"- Training batches augmented on the device: `{table.augment}` "
                     "(each image its own random offset and flip); tests see the original images.")
    for dataset, info in doc["data"].items():
        lines += [f"- {dataset} {line}" for line in _data_notes(info or {})]
    lines += [f"- {note}" for note in table.notes]
    quoted = sorted({r["quoted_from"] for r in doc["rows"] if r.get("quoted_from")})
    lines += [f"- {q}: rows marked with it are the paper's quotes of that work, not its own runs." for q in quoted]
    inits = sorted({r["init"] for r in doc["rows"] if r.get("init")})
    if inits:
        meaning = f" {DEFAULT_INIT}: {DEFAULT_INIT_MEANING}." if DEFAULT_INIT in inits else ""
        lines.append("- Layer initialisation of the networks: " + "; ".join(inits) + "; every head: nn.Linear's "
                     "default (Kaiming-uniform, a = sqrt 5), as `sharens.model.ensemble.FusedHeads` draws it."
                     + meaning)
    lines += ["- Verdict rules: " + " ".join(doc["verdict_rules"].split())]
    if doc.get("interval_method"):
        method = doc["interval_method"]
        lines += [f"- Interval method (`{method['name']}`): {method['description']}; {method['coverage']}."]
    if doc.get("health_rules"):
        lines += ["- Health rules: " + doc["health_rules"] + "."]
    lines += [""]
    return "\n".join(lines)


def _data_notes(info: dict) -> list[str]:
    """What a reader recorded about its data that a reader of the report needs."""
    lines = []
    if info.get("split", {}).get("rule"):
        lines.append(f"split: {info['split']['rule']}")
    if info.get("source"):
        lines.append(f"source: `{info['source']}`")
    if info.get("preprocessing"):
        lines.append(f"preprocessing: {info['preprocessing']}")
    if info.get("test_set"):
        lines.append(f"test set: {info['test_set']}")
    if "clips_present" in info:
        skipped = "; ".join(f"{k}: {v}" for k, v in info["skipped"].items()) or "none"
        lines.append(f"clips: {info['clips_present']} present, {info['clips_used']} used; skipped: {skipped}; "
                     f"{len(info['unverified_wav_conversions'])} are .wav conversions (no published checksum)")
    if info.get("mfcc"):
        lines.append("MFCC parameters: " + ", ".join(f"{k}={v}" for k, v in info["mfcc"].items()))
    if info.get("extraction"):
        e = info["extraction"]
        speed = f"{e['computed_clips_per_s']:.2f} clips/s" if e["computed_clips_per_s"] else "n/a"
        lines.append(
            f"feature extraction (when this data set was built): {e['computed']} clips computed in "
            f"{e['compute_seconds']:.1f} s on {e['workers']} worker processes ({speed}, cold), "
            f"{e['from_cache']} already cached, {e['failed']} failed; a cached rerun read "
            f"{e['clips'] - e['failed']} clips in {e['cached_rerun_seconds']:.3f} s"
            + (f" ({e['compute_seconds'] / e['cached_rerun_seconds']:,.0f}x faster)"
               if e["computed"] and e["cached_rerun_seconds"] else ""))
    return lines


def write(table: Table, profile: str, records: list[dict], out: Path,
          outcomes: Outcomes | None = None, measured: list[dict] = ()) -> tuple[Path, Path]:
    """Write `<table>.json`, `<table>.outcomes.npz`, `<table>.png` and `<table>.md` (which shows the PNG); at
    `full` and `quick`, rewrite the results tree's HTML pages too (`sharens.report.site`)."""
    out = Path(out)
    doc = document.build(table, profile, records, outcomes, measured)
    json_path, md_path = out / f"{table.id}.json", out / f"{table.id}.md"
    write_json(json_path, as_written(doc))
    if outcomes is not None:  # None: rebuilding from a stored document, whose packed outcomes stay as they are
        outcomes.pack(doc["cells"], out / f"{table.id}.outcomes.npz")
    png = plots.accuracy_figure(doc, out / f"{table.id}.png")
    figures = [f"![accuracy per row, ours vs the paper]({png.name})"]
    if any(r.get("sweep") for r in doc["rows"]):
        for path, what in plots.sweep_figures(doc, out / f"{table.id}"):
            figures.append(f"![{what}]({path.name})")
    for name, draw, what in (
            ("cost", plots.cost_figure, "accuracy against training time, parameters and FLOPs: baseline, SE, DSN, "
                                        "snapshots, independent ensemble"),
            ("reliability", plots.reliability_figure, "reliability diagrams of each row's vote, before and after "
                                                      "temperature scaling"),
            ("anytime", plots.anytime_figure, "accuracy against forward FLOPs: stopping at each tap, early exit"),
            ("curves", plots.loss_curves, "loss curves of the cells unfit for a verdict")):
        path = out / f"{table.id}_{name}.png"
        if draw(doc, path) is None:  # nothing to draw this time: no figure of an earlier report left beside it
            path.unlink(missing_ok=True)
        else:
            figures.append(f"![{what}]({path.name})")
    write_bytes(md_path, (markdown(doc, table) + "\n" + "\n\n".join(figures) + "\n").encode())
    if profile in site.PROFILE_FOLDERS:  # the pages, index and README's results block, so they never go stale
        root = site.root_of(out, profile)
        site.write(root)
        readme.update(root.parent / "README.md", root)
    return md_path, json_path
