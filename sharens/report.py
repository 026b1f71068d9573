"""A table's result document -> `<table>.md` for people, beside `<table>.json` and its plots.

`write` builds the document (`sharens.document`), writes the JSON, packs the
cells' per-row outcomes into `<table>.outcomes.npz`, draws the plots, and
renders the markdown from the document alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tabulate import tabulate

from sharens import claims, document, plots, site, stats
from sharens.atomic import write_bytes, write_json
from sharens.benchmark import Table
from sharens.cells import Outcomes
from sharens.claims import CLAIMS
from sharens.metrics import METRICS
from sharens.training import describe
from sharens.voting import VOTES


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
    if doc["cells_without_outcomes"]:
        lines += [f"**Older cells:** {doc['cells_without_outcomes']} finished cells of this table come from runs "
                  "that kept no per-row outcomes; statistics over test rows need those cells rerun.", ""]
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
            _pct(r["paper"]), _accuracy_cell(r), _interval(r.get("interval")), _pct(r.get("delta"), signed=True),
            r.get("verdict") or "", r["status"],
            _rate(r.get("train_samples_per_s")),
            "" if r.get("train_seconds") is None else f"{r['train_seconds']:.1f}",
            _rate(r.get("params")),
        ] for r in rows]
        lines += [tabulate(body, headers=["Model", "Preset", "Paper", "Ours", "95% interval", "Δ", "Verdict",
                                          "Status", "Train samples/s", "Train s", "Params"], tablefmt="github"), ""]
    lines += _health_section(doc) + _sweep_section(doc) + _tap_section(doc) + _gradient_section(doc)
    lines += _claims_section(doc) + _votes_section(doc) + _diversity_section(doc) + _metrics_section(doc)
    lines += _calibration_section(doc) + _taps_calibration_section(doc)
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
    networks = [c["spec"].get("network") or {} for c in doc["cells"]]
    speeds = sorted({", ".join(sorted(n.get("speed") or {})) for n in networks} - {""})
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
    inits = sorted({r["init"] for r in doc["rows"] if r.get("init")})
    if inits:
        lines.append("- Layer initialisation of the networks: " + "; ".join(inits) + "; every head: nn.Linear's "
                     "default (Kaiming-uniform, a = sqrt 5), as `sharens.ensemble.FusedHeads` draws it.")
    lines += ["- Verdict rules: " + " ".join(doc["verdict_rules"].split())]
    if doc.get("health_rules"):
        lines += ["- Health rules: " + doc["health_rules"] + "."]
    lines += [""]
    return "\n".join(lines)


def _sweep_section(doc: dict) -> list[str]:
    """Accuracy by depth, one line per family and variant, and what going from the shallowest to the deepest
    measured net does to it (paired over seeds): degradation shows as a negative change."""
    rows = [r for r in doc["rows"] if r.get("sweep") and r["accuracy"] and r["accuracy"]["n"]]
    if not rows:
        return []
    depths = sorted({r["sweep"]["depth"] for r in rows})
    lines_ = sorted({(r["preset"], *plots.sweep_line(r)) for r in rows})
    body = []
    for preset, family, variant in lines_:
        mine = {r["sweep"]["depth"]: r for r in rows
                if (r["preset"], *plots.sweep_line(r)) == (preset, family, variant)}
        shallow, deep = mine[min(mine)], mine[max(mine)]
        change = stats.paired_difference(*(dict(zip(r["seeds"], r["accuracy"]["values"], strict=True))
                                           for r in (deep, shallow)))
        ci = f" [{change['ci95'][0]:+.2f}, {change['ci95'][1]:+.2f}]" if change.get("ci95") else ""
        body.append([preset, family + plots.SWEEP_SUFFIX[variant]]
                    + [_pct(mine[d]["accuracy"]["mean"]) if d in mine else "" for d in depths]
                    + [f"{_pct(change['mean'], signed=True)}{ci} ({min(mine)} → {max(mine)})"
                       if len(mine) > 1 and change.get("mean") is not None else ""])
    return ["## Accuracy by depth", "",
            "Mean test accuracy per depth; the last column is the deepest net measured minus the shallowest "
            "(paired over seeds, 95% t-interval where there are several): a negative change is degradation.", "",
            tabulate(body, headers=["Preset", "Net"] + [str(d) for d in depths] + ["Deepest − shallowest"],
                     tablefmt="github"), ""]


def _interval(interval: dict | None) -> str:
    return "" if not interval else f"[{interval['low']:.2f}, {interval['high']:.2f}]"


def _health_section(doc: dict) -> list[str]:
    """Rows that rest on a cell unfit for a verdict, with the evidence (from training data only)."""
    rows = [r for r in doc["rows"] if r.get("health", {}).get("status", "ok") != "ok"]
    if not rows:
        return []
    body = [[r["dataset"], r["model"], r.get("preset") or "", r["health"]["status"],
             f"{r['health']['cells']}/{r['health']['of']}", r["health"]["evidence"]] for r in rows]
    return ["## Cells unfit for a verdict", "",
            "These rows get a health status instead of a verdict (rules in the settings); the loss curves of their "
            f"cells, where recorded, are plotted in `{doc['table']}_curves.png` (linked below).", "",
            tabulate(body, headers=["Data set", "Model", "Preset", "Status", "Cells", "Evidence (first cell)"],
                     tablefmt="github"), ""]


def _claims_section(doc: dict) -> list[str]:
    """One section per registered claim (`sharens.claims`) the table has."""
    lines = []
    for claim_kind in CLAIMS.values():
        found = [c for c in doc["claims"] if claims.kind(c) is claim_kind]
        if found:
            lines += _claim_section(claim_kind, found)
    return lines


def _gain_cells(c: dict) -> list[str]:
    g = c["gain"]
    ci = f" [{g['ci95'][0]:+.2f}, {g['ci95'][1]:+.2f}]" if g.get("ci95") else ""
    p = "" if g.get("p_holm") is None else f"{g['p_holm']:.3g}"
    return [f"{_pct(g['mean'], signed=True)}{ci}", p, c["verdict"]]


def _times(x: float | None) -> str:
    return _pct(x) + "x" if x else ""


def _claim_section(claim_kind, found: list[dict]) -> list[str]:
    against = claim_kind.against
    methods = sorted({c["gain"].get("method") for c in found if c["gain"].get("method")})
    name = claim_kind.short
    intro = (f"Gain = SE − {name} on the same seeds and test rows, with its 95% interval (" + "; ".join(methods)
             + "). Direction: Holm-corrected one-sided p of gain ≤ 0 across all of this table's claims. ")
    if against == "baseline":
        body = [[c["dataset"], c["pair"], c["preset"], _pct(c["paper_gain"], signed=True), *_gain_cells(c),
                 c.get("magnitude") or "", _times(c.get("se_over_baseline_train_time")),
                 _pct(c["se_minus_ensemble"]["mean"], signed=True) if c.get("se_minus_ensemble") else "",
                 _times(c.get("ensemble_over_se_train_time"))] for c in found]
        headers = ["Data set", "Pair", "Preset", "Paper gain", "Our gain [95% CI]", "p (Holm)", "Direction",
                   "Magnitude", "SE / baseline train time", "SE − independent ens.",
                   "Independent ens. / SE train time"]
        intro += ("Magnitude: is the paper's gain inside our interval ± the tolerance? Cost columns compare "
                  "training wall time.")
    else:
        rules = [("se", "soft"), ("se", "last_head"), (against, "last_head"), (against, "soft")]
        show_votes = any(c.get("votes") for c in found)
        body = [[c["dataset"], c["pair"], c["preset"], *_gain_cells(c),
                 *([_pct((c.get("votes") or {}).get(side, {}).get(vote)) for side, vote in rules] if show_votes
                   else []),
                 _times(c.get(f"se_over_{against}_train_time"))] for c in found]
        headers = ["Data set", "Pair", "Preset", "Our gain [95% CI]", "p (Holm)", "Direction",
                   *(["SE vote", "SE last head", f"{name} last head", f"{name} vote"] if show_votes else []),
                   f"SE / {name} train time"]
        intro += f"The {name} row: {claim_kind.description}."
        if show_votes:
            intro += (" Each model under both rules (mean accuracy over seeds): SE's last head alone shows what "
                      f"its training does without the vote; the {name}'s vote over its taps shows what voting adds "
                      "to deep supervision.")
    return [f"## Claim: {claim_kind.title}", "", intro, "", tabulate(body, headers=headers, tablefmt="github"), ""]


def _diversity_section(doc: dict) -> list[str]:
    """How often two voters disagree: within a tap, across taps, and between independent members."""
    rows = [r for r in doc["rows"] if r.get("disagreement")]
    if not rows:
        return []
    body = [[r["dataset"], r["model"], r.get("preset") or "", _pct(r["disagreement"]["all"]),
             _pct(r["disagreement"]["within_group"]), _pct(r["disagreement"]["across_groups"])] for r in rows]
    return ["## Do the voters disagree?", "",
            "Share of test rows (%) on which two voters predict different classes, averaged over pairs and seeds "
            "(from the stored per-row predictions of every head). Heads on one tap share all their features; an "
            "independent ensemble's members share nothing (they count as being on different taps).", "",
            tabulate(body, headers=["Data set", "Model", "Preset", "All pairs", "Same tap", "Different taps"],
                     tablefmt="github"), ""]


def _metrics_section(doc: dict) -> list[str]:
    """Every registered metric beyond accuracy, of each row's own prediction (calibration and the like)."""
    names = [name for name in METRICS if name != "accuracy"]
    rows = [r for r in doc["rows"] if any((r.get("metrics") or {}).get(name) is not None for name in names)]
    if not rows:
        return []
    body = [[r["dataset"], r["model"], r.get("preset") or "", _pct(r["accuracy"]["mean"])]
            + ["" if r["metrics"].get(name) is None else f"{r['metrics'][name]:.3f}" for name in names] for r in rows]
    return ["## Beyond accuracy: every registered metric of each row's prediction", "",
            "Means over seeds. " + " ".join(f"`{name}`: {METRICS[name].description}." for name in names)
            + " Computed by each cell when it ran, or now from its stored float16 class probabilities.", "",
            tabulate(body, headers=["Data set", "Model", "Preset", "Accuracy"] + names, tablefmt="github"), ""]


def _num(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def _before_after(entry: dict, metric: str, digits: int = 2) -> str:
    """'before -> after' temperature scaling ('before' alone where no temperature was fitted)."""
    before = _num(entry["before"][metric], digits)
    return before if not entry.get("after") else f"{before} → {_num(entry['after'][metric], digits)}"


def _calibration_section(doc: dict) -> list[str]:
    """Calibration before and after temperature scaling, diversity and anytime accuracy of every row that
    recorded an analysis (`sharens.analysis`), means over seeds."""
    rows = [r for r in doc["rows"] if r.get("analysis")]
    if not rows:
        return []
    body = []
    for r in rows:
        a = r["analysis"]
        vote, div = a["calibration"]["vote"], a.get("diversity") or {}
        body.append([
            r["dataset"], r["model"], r.get("preset") or "", a["cells"], _num(vote.get("temperature")),
            _before_after(vote, "ece"), _before_after(vote, "ace"), _before_after(vote, "nll", 3),
            _before_after(vote, "brier", 3),
            "" if not div or not div.get("disagreement_over_error") else _num(div["disagreement_over_error"]["all"]),
            "" if not div else _num(div["kl"]["all"], 3), "" if not div else _num(div["mutual_information"]["all"], 3),
            *_at_half(a)])
    return ["## Calibration, diversity and anytime prediction", "",
            "Each row's own vote, mean over the seeds that recorded an analysis (cells from before it show none; "
            "`--force` reruns them, with the same accuracy). ECE and adaptive ECE (ACE) in %, NLL in nats: before → "
            "after temperature scaling, the temperature T fitted on the cell's held-out train rows (never the test "
            "rows; a table whose protocol trains on every train row gets none). Disagreement over error: the share "
            "of test rows on which two voters differ (see 'Do the voters disagree?') divided by the pair's mean "
            "error rate; KL: mean symmetric KL between two voters' class scores; MI: "
            "mutual information of the voters (entropy of their mean minus their mean entropy, nats). Anytime ½: "
            "accuracy of the soft vote of the heads up to the deepest tap (or first members) needing at most half "
            "of the forward FLOPs; exit ½: confidence-threshold early exit over those prefixes, the threshold chosen "
            "on the held-out rows as the most accurate there within half of the FLOPs.", "",
            tabulate(body, headers=["Data set", "Model", "Preset", "Seeds", "T", "ECE", "ACE", "NLL", "Brier",
                                    "Disagreement over error", "KL", "MI", "Anytime ½",
                                    "Exit ½"], tablefmt="github"), ""]


def _at_half(analysis: dict) -> list[str]:
    """(anytime, early exit) accuracy at half of the FLOPs, or why there is none."""
    half, curve = analysis["at_half_flops"], analysis.get("anytime")
    if curve and half["anytime"] is None:  # the shallowest prefix already costs more
        return [f"— (first tap {curve[0]['flops_share']:.0%} of FLOPs)", ""]
    return [_num(half["anytime"]), _num(half["early_exit"])]


def _taps_calibration_section(doc: dict) -> list[str]:
    """Per tap of every multi-tap row: its heads (mean), its own vote, and the vote of the heads up to it."""
    rows = [r for r in doc["rows"] if (r.get("analysis") or {}).get("anytime")]
    if not rows:
        return []
    body = []
    for r in rows:
        calibration = r["analysis"]["calibration"]
        for point in r["analysis"]["anytime"]:
            group = point["group"]
            heads = [entry for name, entry in calibration.items() if name.startswith(f"head {group}/")]
            own = calibration.get(f"group {group}") or calibration.get(f"head {group}")
            prefix = calibration.get(f"prefix {group}") or calibration["vote"]
            body.append([r["dataset"], r["model"], r.get("preset") or "", group, _num(point["flops_share"]),
                         _num(np.mean([h["before"]["accuracy"] for h in heads])) if heads else "",
                         _num(np.mean([h["before"]["ece"] for h in heads])) if heads else "",
                         "" if own is None else _num(own["before"]["accuracy"]),
                         "" if own is None else _before_after(own, "ece"),
                         _num(prefix["before"]["accuracy"]), _before_after(prefix, "ece"),
                         _before_after(prefix, "nll", 3)])
    return ["## Calibration tap by tap", "",
            "For each tap of an SE or DSN network (or each member of an ensemble, in order): its share of the "
            "forward FLOPs up to there, its heads' mean accuracy and ECE, the vote of its own heads, and the "
            "prefix vote (every head up to it; the last prefix is the soft vote of all, which may differ from "
            "the row's own rule). ECE before → after temperature scaling; means over seeds.", "",
            tabulate(body, headers=["Data set", "Model", "Preset", "Tap", "FLOPs share", "Heads acc", "Heads ECE",
                                    "Tap vote acc", "Tap vote ECE", "Prefix acc", "Prefix ECE", "Prefix NLL"],
                     tablefmt="github"), ""]


def _tap_section(doc: dict) -> list[str]:
    """Mean test accuracy of the heads on each tap: does the vote ride on shallow heads?"""
    rows = [r for r in doc["rows"] if r.get("tap_accuracy")]
    if not rows:
        return []
    taps = list(dict.fromkeys(t for r in rows for t in r["tap_accuracy"]))
    body = [[r["dataset"], r["model"], r.get("preset") or "", _pct(r["accuracy"]["mean"])]
            + [_pct(r["tap_accuracy"].get(t)) for t in taps] for r in rows]
    return ["## Accuracy of the heads on each tap", "",
            "Mean test accuracy of the heads on each tap (shallow to deep), beside the row's vote.", "",
            tabulate(body, headers=["Data set", "Model", "Preset", "Vote"] + taps, tablefmt="github"), ""]


def _votes_section(doc: dict) -> list[str]:
    """Every registered vote of the rows with several voters, beside the vote that gives the row's accuracy."""
    rows = [r for r in doc["rows"] if r.get("votes") and r["variant"] != "baseline" and r["accuracy"]["n"]]
    names = [name for name in VOTES if any(r["votes"].get(name) is not None for r in rows)]
    if not rows or not names:
        return []
    body = [[r["dataset"], r["model"], r["preset"], _pct(r["accuracy"]["mean"])]
            + [_pct(r["votes"].get(name)) for name in names] for r in rows]
    return ["## Does voting beat any single head?", "",
            "Test accuracy of the row (its own vote) beside every registered vote of the same heads; for an "
            "independent ensemble a 'head' is one member network. "
            + " ".join(f"`{name}`: {VOTES[name].description}." for name in names), "",
            tabulate(body, headers=["Data set", "Model", "Preset", "Row"] + names, tablefmt="github"), ""]


def _gradient_section(doc: dict) -> list[str]:
    rows = [r for r in doc["rows"] if r.get("first_layer_gradient_norm")]
    if not rows:
        return []

    def norm(r, when, key="first_layer_gradient_norm"):
        s = (r.get(key) or {}).get(when) or {}
        return "" if not s.get("n") else f"{s['mean']:.3g}"

    body = [[r["dataset"], r["model"], r.get("preset") or "", norm(r, "init"), norm(r, "trained"),
             norm(r, "init", "first_layer_gradient_norm_per_head_weight")] for r in rows]
    return ["## Gradient reaching the first layer", "",
            "L2 norm of d(training loss)/d(first-layer weight) on one fixed batch of train rows, at initialisation "
            "and after training, mean over seeds. An SE model's loss is the sum of its heads' losses, as it is "
            "trained; the last column divides it by the total head weight (a net with 20 heads sums 20 losses).", "",
            tabulate(body, headers=["Data set", "Model", "Preset", "At init", "After training",
                                    "At init, per unit of head weight"], tablefmt="github"), ""]


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
          outcomes: Outcomes | None = None) -> tuple[Path, Path]:
    """Write `<table>.json`, `<table>.outcomes.npz`, `<table>.png` and `<table>.md` (which shows the PNG); at
    `full` and `quick`, rewrite the results tree's HTML pages too (`sharens.site`)."""
    out = Path(out)
    doc = document.build(table, profile, records, outcomes)
    json_path, md_path = out / f"{table.id}.json", out / f"{table.id}.md"
    write_json(json_path, doc)
    if outcomes is not None:  # None: rebuilding from a stored document, whose packed outcomes stay as they are
        outcomes.pack(doc["cells"], out / f"{table.id}.outcomes.npz")
    png = plots.accuracy_figure(doc, out / f"{table.id}.png")
    figures = [f"![accuracy per row, ours vs the paper]({png.name})"]
    if any(r.get("sweep") for r in doc["rows"]):
        for path, what in plots.sweep_figures(doc, out / f"{table.id}"):
            figures.append(f"![{what}]({path.name})")
    cost = plots.cost_figure(doc, out / f"{table.id}_cost.png")
    if cost is not None:
        figures.append(f"![accuracy against training time, parameters and FLOPs: baseline, SE, DSN, snapshots, "
                       f"independent ensemble]"
                       f"({cost.name})")
    for figure, what in ((plots.reliability_figure, "reliability diagrams of each row's vote, before and after "
                          "temperature scaling"),
                         (plots.anytime_figure, "accuracy against forward FLOPs: stopping at each tap, early exit")):
        drawn = figure(doc, out / f"{table.id}_{figure.__name__.removesuffix('_figure')}.png")
        if drawn is not None:
            figures.append(f"![{what}]({drawn.name})")
    curves = plots.loss_curves(doc, out / f"{table.id}_curves.png")
    if curves is not None:
        figures.append(f"![loss curves of the cells unfit for a verdict]({curves.name})")
    write_bytes(md_path, (markdown(doc, table) + "\n" + "\n\n".join(figures) + "\n").encode())
    if profile in site.PROFILE_FOLDERS:  # the pages and index of the results tree, so they never go stale
        site.write(site.root_of(out, profile))
    return md_path, json_path
