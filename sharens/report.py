"""Cell records -> `<table>.json` (for machines) and `<table>.md` (for people).

The JSON schema (`SCHEMA`) is documented in README.md: per row `dataset`,
`model`, `kind`, `preset`, `paper`, `quoted_from`, `accuracy` {mean, std, n,
values}, `delta`, `verdict`, `train_samples_per_s`, `status`, ...; then
`claims`, `heads`, the raw `cells` and a `provenance` object.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from tabulate import tabulate

from sharens import plots, provenance, stats
from sharens.benchmark import Table
from sharens.cells import write_json_atomic
from sharens.training import describe

SCHEMA = "sharens.table/1"


def _mean(records: list[dict], key: str) -> float | None:
    values = [r[key] for r in records if r.get(key) is not None]
    return float(np.mean(values)) if values else None


def _status(records: list[dict]) -> str:
    bad = [r for r in records if r["status"] != "ok"]
    if not bad:
        return "ok"
    steps = ", ".join(str(r.get("diverged_at_step")) for r in bad)
    return f"{bad[0]['status']} ({len(bad)}/{len(records)} seeds, at step {steps})"


def _comparable(table: Table, dataset: str, records: list[dict]) -> bool:
    """Were these cells run on the paper's split sizes (not a partial copy, not a profile's slice)?"""
    split = table.paper_split.get(dataset)
    return split is None or all((r["n_train"], r["n_test"]) == tuple(split) for r in records)


def _row(table: Table, dataset: str, model: str, kind: str, preset: str | None, records: list[dict]) -> dict:
    ok = _ok(records)
    paper = table.paper.get(model, {}).get(dataset)
    values = [r["accuracy"] for r in ok]
    accuracy = stats.summarize(values)
    if _comparable(table, dataset, records):
        verdict = stats.row_verdict(values, paper, table.tolerance)
    else:
        verdict = stats.NOT_COMPARABLE
    return {
        "dataset": dataset, "model": model, "kind": kind, "preset": preset,
        "paper": paper, "quoted_from": table.quoted.get(model),
        "accuracy": accuracy,
        "seeds": [r["seed"] for r in ok],  # of accuracy's values, in order
        "delta": accuracy["mean"] - paper if paper is not None and values else None,
        "verdict": verdict if paper is not None and values else None,
        "status": _status(records),
        "hard_vote_accuracy": _mean(ok, "hard_vote_accuracy"),
        "best_head_accuracy": _mean(ok, "best_head_accuracy"),
        "last_head_accuracy": _mean(ok, "last_head_accuracy"),
        "train_seconds": _mean(records, "train_seconds"),
        "train_samples_per_s": _mean(records, "train_samples_per_s"),
        "eval_samples_per_s": _mean(records, "eval_samples_per_s"),
        "params": records[0].get("params"),
        "flops_per_sample": records[0].get("flops_per_sample"),
        **_extras(table, model, ok),
    }


def _extras(table: Table, model: str, ok: list[dict]) -> dict:
    """What only some tables measure: accuracy on test subsets, first-layer gradient norms, the depth sweep."""
    extras = {}
    subsets = sorted({name for r in ok for name in r.get("subset_accuracy", {})})
    if subsets:
        extras["subset_accuracy"] = {name: stats.summarize([r["subset_accuracy"][name] for r in ok
                                                            if name in r.get("subset_accuracy", {})])
                                     for name in subsets}
    norms = [r["first_layer_gradient_norm"] for r in ok if r.get("first_layer_gradient_norm")]
    if norms:
        extras["first_layer_gradient_norm"] = {
            when: stats.summarize([n[when] for n in norms if when in n]) for when in ("init", "trained")}
    pair = next((p for p in table.pairs if model in (p.name, p.se_name)), None)
    if pair is not None and pair.sweep:
        extras["sweep"] = {"family": pair.sweep[0], "depth": pair.sweep[1], "se": model == pair.se_name}
    return extras


def _ok(records: list[dict]) -> list[dict]:
    return [r for r in records if r["status"] == "ok"]


def _by_seed(records: list[dict]) -> dict[int, float]:
    return {r["seed"]: r["accuracy"] for r in records if r["status"] == "ok"}


def _claims(table: Table, dataset: str, preset: str, groups: dict) -> list[dict]:
    claims = []
    for pair in table.pairs:
        base = groups.get((dataset, pair.name, preset), [])
        se = groups.get((dataset, pair.se_name, preset), [])
        if not base or not se:
            continue
        paper = table.paper
        paper_gain = None
        if dataset in paper.get(pair.se_name, {}) and dataset in paper.get(pair.name, {}):
            paper_gain = paper[pair.se_name][dataset] - paper[pair.name][dataset]
        gain = stats.paired_difference(_by_seed(se), _by_seed(base))
        verdict = stats.claim_verdict(gain, paper_gain, table.tolerance)
        claim = {
            "dataset": dataset, "pair": pair.name, "preset": preset,
            "paper_gain": paper_gain, "gain": gain,
            "verdict": verdict if _comparable(table, dataset, base + se) else stats.NOT_COMPARABLE,
            # finished runs only: a diverged run stops early and would flatter its side
            "se_over_baseline_train_time": _ratio(_mean(_ok(se), "train_seconds"), _mean(_ok(base), "train_seconds")),
        }
        ensemble = next((v for (d, m, p), v in groups.items()
                         if d == dataset and p == preset and m.startswith(pair.name + " x")), None)
        if ensemble:
            claim["ensemble_model"] = ensemble[0]["model"]
            claim["se_minus_ensemble"] = stats.paired_difference(_by_seed(se), _by_seed(ensemble))
            claim["ensemble_over_se_train_time"] = _ratio(
                _mean(_ok(ensemble), "train_seconds"), _mean(_ok(se), "train_seconds"))
        claims.append(claim)
    return claims


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _row_order(table: Table) -> list[str]:
    """Paper-only rows, classic models, then each pair's rows, in declaration order."""
    order = [c.name for c in table.classic]
    for pair in table.pairs:
        order += [pair.name, pair.se_name, pair.weighted_name]
        order += [pair.ensemble_name(k) for k in range(pair.independent_ensemble, 0, -1)]
    return [m for m in table.paper if m not in order] + order


def build(table: Table, profile: str, records: list[dict]) -> dict:
    """The whole result document of one table (what `<table>.json` holds)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in sorted(records, key=lambda r: r["seed"]):
        groups[(r["dataset"], r["model"], r["preset"])].append(r)
    presets = sorted({r["preset"] for r in records if r["preset"]})
    measured_models = {m for (_, m, _) in groups}
    order = _row_order(table)
    groups = dict(sorted(groups.items(), key=lambda kv: (kv[0][2] or "", order.index(kv[0][1]))))
    rows, claims = [], []
    for dataset in table.datasets:
        for model, by_dataset in table.paper.items():
            if dataset in by_dataset and model not in measured_models:
                rows.append({"dataset": dataset, "model": model, "kind": "cited", "preset": None,
                             "paper": by_dataset[dataset], "quoted_from": table.quoted.get(model),
                             "accuracy": None, "status": "cited, not re-run"})
        for (d, model, preset), recs in groups.items():
            if d == dataset:
                rows.append(_row(table, dataset, model, recs[0]["kind"], preset, recs))
        for preset in presets:
            claims += _claims(table, dataset, preset, groups)
    wall = sum(r["provenance"]["wall_seconds"] for r in records)
    by_preset = defaultdict(float)
    for r in records:
        by_preset[r["preset"] or "classic"] += r["provenance"]["wall_seconds"]
    devices = sorted({r["provenance"]["device"] for r in records})
    return {
        "schema": SCHEMA, "table": table.id, "title": table.title, "profile": profile,
        # as the cells ran them (a preset's definition may have changed since); where a pair changes a
        # preset (ResNet-110's warm-up) the settings say so, and this shows what most cells ran
        "presets": _presets_as_run(records),
        "tolerance": table.tolerance, "verdict_rules": stats.VERDICT_RULES,
        "rows": rows, "claims": claims,
        "data": {r["dataset"]: r.get("data") for r in records},
        "cells": records,
        "provenance": {**provenance.environment(), "devices": devices,
                       "seeds": sorted({r["seed"] for r in records}),
                       "cell_git_revisions": sorted({str(r["provenance"]["git_revision"]) for r in records}),
                       "cell_wall_seconds_total": wall,
                       "cell_wall_seconds_by_preset": dict(sorted(by_preset.items()))},
    }


def _presets_as_run(records: list[dict]) -> dict[str, dict]:
    configs = defaultdict(list)
    for r in records:
        if r["preset"]:
            configs[r["preset"]].append(r["config"]["preset"])
    return {name: max(found, key=found.count) for name, found in configs.items()}


def _pct(x: float | None, signed: bool = False) -> str:
    return "" if x is None else (f"{x:+.2f}" if signed else f"{x:.2f}")


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
        f"Accuracies are test accuracy in %, mean ± sample std over seeds. "
        f"A row counts as reproduced within ±{doc['tolerance']:g} points of the paper.",
        "",
    ]
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
            _pct(r["paper"]), _accuracy_cell(r), _pct(r.get("delta"), signed=True),
            r.get("verdict") or "", r["status"],
            _rate(r.get("train_samples_per_s")),
            "" if r.get("train_seconds") is None else f"{r['train_seconds']:.1f}",
            _rate(r.get("params")),
        ] for r in rows]
        lines += [tabulate(body, headers=["Model", "Preset", "Paper", "Ours", "Δ", "Verdict", "Status",
                                          "Train samples/s", "Train s", "Params"], tablefmt="github"), ""]
    lines += _sweep_section(doc) + _subset_section(doc) + _gradient_section(doc)
    if doc["claims"]:
        lines += ["## Claim: SE beats its baseline", "",
                  "Gain = SE − baseline on paired seeds, with its 95% t-interval. "
                  "Cost columns compare training wall time.", ""]
        body = []
        for c in doc["claims"]:
            g = c["gain"]
            ci = f" [{g['ci95'][0]:+.2f}, {g['ci95'][1]:+.2f}]" if g.get("ci95") else ""
            ens = c.get("se_minus_ensemble")
            body.append([
                c["dataset"], c["pair"], c["preset"], _pct(c["paper_gain"], signed=True),
                f"{_pct(g['mean'], signed=True)}{ci}", c["verdict"],
                _pct(c["se_over_baseline_train_time"]) + "x" if c["se_over_baseline_train_time"] else "",
                _pct(ens["mean"], signed=True) if ens else "",
                _pct(c.get("ensemble_over_se_train_time")) + "x" if c.get("ensemble_over_se_train_time") else "",
            ])
        lines += [tabulate(body, headers=["Data set", "Pair", "Preset", "Paper gain", "Our gain [95% CI]",
                                          "Verdict", "SE / baseline train time", "SE − independent ens.",
                                          "Independent ens. / SE train time"], tablefmt="github"), ""]
    head_rows = [r for r in doc["rows"] if r.get("best_head_accuracy") is not None and r["kind"] != "baseline"]
    if head_rows:
        lines += ["## Does voting beat any single head?", "",
                  "The row's vote (soft, the paper's rule; accuracy-weighted for the rows that say so), "
                  "hard vote, the best single head (chosen on test, so an optimistic bound) and the last "
                  "head alone (the DSN-style reading). For an independent ensemble a 'head' is one member "
                  "network.", ""]
        body = [[r["dataset"], r["model"], r["preset"], _pct(r["accuracy"]["mean"]), _pct(r["hard_vote_accuracy"]),
                 _pct(r["best_head_accuracy"]), _pct(r["last_head_accuracy"])] for r in head_rows]
        lines += [tabulate(body, headers=["Data set", "Model", "Preset", "Vote", "Hard vote",
                                          "Best head", "Last head"], tablefmt="github"), ""]
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
            for c in table.classic) + "; see `sharens/classic.py` for their settings.")
    speeds = sorted({", ".join(sorted((c.get("config") or {}).get("speed") or {})) for c in doc["cells"]} - {""})
    if speeds:
        lines.append(f"- Device options of the networks' cells: {'; '.join(speeds)} (see `sharens.training.Speed`).")
    if table.augment:
        lines.append(f"- Training batches augmented on the device: `{table.augment}` "
                     "(each image its own random offset and flip); tests see the original images.")
    for dataset, info in doc["data"].items():
        lines += [f"- {dataset} {line}" for line in _data_notes(info or {})]
    lines += [f"- {note}" for note in table.notes]
    quoted = sorted({r["quoted_from"] for r in doc["rows"] if r.get("quoted_from")})
    lines += [f"- {q}: rows marked with it are the paper's quotes of that work, not its own runs." for q in quoted]
    lines += ["- Verdict rules: " + " ".join(doc["verdict_rules"].split()), ""]
    return "\n".join(lines)


def _sweep_section(doc: dict) -> list[str]:
    """Accuracy by depth, one line per family and variant, and what going from the shallowest to the deepest
    measured net does to it (paired over seeds): degradation shows as a negative change."""
    rows = [r for r in doc["rows"] if r.get("sweep") and r["accuracy"] and r["accuracy"]["n"]]
    if not rows:
        return []
    depths = sorted({r["sweep"]["depth"] for r in rows})
    lines_ = sorted({(r["preset"], r["sweep"]["family"], r["sweep"]["se"]) for r in rows})
    body = []
    for preset, family, se in lines_:
        mine = {r["sweep"]["depth"]: r for r in rows
                if (r["preset"], r["sweep"]["family"], r["sweep"]["se"]) == (preset, family, se)}
        shallow, deep = mine[min(mine)], mine[max(mine)]
        change = stats.paired_difference(*(dict(zip(r["seeds"], r["accuracy"]["values"], strict=True))
                                           for r in (deep, shallow)))
        ci = f" [{change['ci95'][0]:+.2f}, {change['ci95'][1]:+.2f}]" if change.get("ci95") else ""
        body.append([preset, family + (" +SE" if se else "")]
                    + [_pct(mine[d]["accuracy"]["mean"]) if d in mine else "" for d in depths]
                    + [f"{_pct(change['mean'], signed=True)}{ci} ({min(mine)} → {max(mine)})"
                       if len(mine) > 1 and change.get("mean") is not None else ""])
    return ["## Accuracy by depth", "",
            "Mean test accuracy per depth; the last column is the deepest net measured minus the shallowest "
            "(paired over seeds, 95% t-interval where there are several): a negative change is degradation.", "",
            tabulate(body, headers=["Preset", "Net"] + [str(d) for d in depths] + ["Deepest − shallowest"],
                     tablefmt="github"), ""]


def _subset_section(doc: dict) -> list[str]:
    rows = [r for r in doc["rows"] if r.get("subset_accuracy")]
    if not rows:
        return []
    names = sorted({name for r in rows for name in r["subset_accuracy"]})
    sizes = {name: n for r in rows for name, n in (doc["data"].get(r["dataset"]) or {}).get("test_subsets", {}).items()}
    body = [[r["dataset"], r["model"], r.get("preset") or "", _pct(r["accuracy"]["mean"])]
            + [_accuracy_cell({"accuracy": r["subset_accuracy"].get(name)}) for name in names] for r in rows]
    return ["## Accuracy on subsets of the test set", "",
            "The whole test set beside named subsets of it (" + ", ".join(
                f"{name}: {sizes.get(name, '?'):,} rows" for name in names) + "; see the data notes below).", "",
            tabulate(body, headers=["Data set", "Model", "Preset", "All test rows"] + names, tablefmt="github"), ""]


def _gradient_section(doc: dict) -> list[str]:
    rows = [r for r in doc["rows"] if r.get("first_layer_gradient_norm")]
    if not rows:
        return []

    def norm(r, when):
        s = r["first_layer_gradient_norm"].get(when) or {}
        return "" if not s.get("n") else f"{s['mean']:.3g}"

    body = [[r["dataset"], r["model"], r.get("preset") or "", norm(r, "init"), norm(r, "trained")] for r in rows]
    return ["## Gradient reaching the first layer", "",
            "L2 norm of d(training loss)/d(first-layer weight) on one fixed batch of train rows, at initialisation "
            "and after training, mean over seeds. An SE model's loss is the sum of its heads' losses, as it is "
            "trained.", "",
            tabulate(body, headers=["Data set", "Model", "Preset", "At init", "After training"], tablefmt="github"),
            ""]


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


def write(table: Table, profile: str, records: list[dict], out: Path) -> tuple[Path, Path]:
    """Write `<table>.json`, `<table>.png` and `<table>.md` (which shows the PNG) into `out`."""
    doc = build(table, profile, records)
    out = Path(out)
    json_path, md_path = out / f"{table.id}.json", out / f"{table.id}.md"
    write_json_atomic(json_path, doc)
    png = plots.accuracy_figure(doc, out / f"{table.id}.png")
    figures = [f"![accuracy per row, ours vs the paper]({png.name})"]
    if any(r.get("sweep") for r in doc["rows"]):
        for path, what in plots.sweep_figures(doc, out / f"{table.id}"):
            figures.append(f"![{what}]({path.name})")
    md_path.write_text(markdown(doc, table) + "\n" + "\n\n".join(figures) + "\n")
    return md_path, json_path
