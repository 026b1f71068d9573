"""The sections of a table's Markdown report after its rows: each reads the result document alone and returns
its lines (none when the table has nothing for it). `SECTIONS` holds them in report order, so a new section
is one function and one entry there.
"""

from __future__ import annotations

import numpy as np
from tabulate import tabulate

from sharens.judge import claims, document, stats
from sharens.judge.claims import CLAIMS
from sharens.model.metrics import METRICS
from sharens.model.voting import VOTES
from sharens.report import plots


def pct(x: float | None, signed: bool = False) -> str:
    """A percentage (or any two-decimal number) for a table cell; empty when there is none."""
    return "" if x is None else (f"{x:+.2f}" if signed else f"{x:.2f}")


def interval(found: dict | None) -> str:
    """A 95% interval for a table cell."""
    return "" if not found else f"[{found['low']:.2f}, {found['high']:.2f}]"


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
                    + [pct(mine[d]["accuracy"]["mean"]) if d in mine else "" for d in depths]
                    + [f"{pct(change['mean'], signed=True)}{ci} ({min(mine)} → {max(mine)})"
                       if len(mine) > 1 and change.get("mean") is not None else ""])
    return ["## Accuracy by depth", "",
            "Mean test accuracy per depth; the last column is the deepest net measured minus the shallowest "
            "(paired over seeds, 95% t-interval where there are several): a negative change is degradation.", "",
            tabulate(body, headers=["Preset", "Net"] + [str(d) for d in depths] + ["Deepest − shallowest"],
                     tablefmt="github"), ""]


def _health_section(doc: dict) -> list[str]:
    """Rows that rest on a cell unfit for a verdict, with the evidence (from training data only)."""
    rows = [r for r in doc["rows"] if r.get("health", {}).get("status", "ok") != "ok"]
    if not rows:
        return []
    body = [[r["dataset"], r["model"], r.get("preset") or "", r["health"]["status"],
             f"{r['health']['cells']}/{r['health']['of']}", r["health"]["evidence"]] for r in rows]
    curves = plots.unhealthy_curves(doc)
    unrecorded = [f"{model} ({preset or 'classic'}, {dataset})"
                  for (dataset, model, preset), cells in curves.items() if not cells]
    if len(unrecorded) == len(curves):
        where = "none of their cells recorded loss curves, so none are plotted"
    else:
        where = f"the loss curves of their cells are plotted in `{doc['table']}_curves.png` (linked below)"
        if unrecorded:
            where += f", except for {', '.join(unrecorded)}, whose cells recorded none"
    return ["## Cells unfit for a verdict", "",
            f"These rows get a health status instead of a verdict (rules in the settings); {where}.", "",
            tabulate(body, headers=["Data set", "Model", "Preset", "Status", "Cells", "Evidence (first cell)"],
                     tablefmt="github"), ""]


def _claims_section(doc: dict) -> list[str]:
    """One section per registered claim (`sharens.judge.claims`) the table has."""
    lines = []
    for claim_kind in CLAIMS.values():
        found = [c for c in doc["claims"] if claims.kind(c) is claim_kind]
        if found:
            lines += _one_claim(claim_kind, found)
    return lines


def _gain_cells(c: dict) -> list[str]:
    g = c["gain"]
    ci = f" [{g['ci95'][0]:+.2f}, {g['ci95'][1]:+.2f}]" if g.get("ci95") else ""
    p = "" if g.get("p_holm") is None else f"{g['p_holm']:.3g}"
    return [f"{pct(g['mean'], signed=True)}{ci}", p, c["verdict"]]


def _times(x: float | None) -> str:
    return pct(x) + "x" if x else ""


def _one_claim(claim_kind, found: list[dict]) -> list[str]:
    against = claim_kind.against
    methods = sorted({c["gain"].get("method") for c in found if c["gain"].get("method")})
    name = claim_kind.short
    families = sorted({c["family"] for c in found if c.get("family")})
    intro = (f"Gain = SE − {name} on the same seeds and test rows, with its 95% interval (" + "; ".join(methods)
             + "). Direction: the two-sided p of no difference, Holm-corrected within "
             + (" and ".join(families) or "its family") + " of this table; the sign of the gain says which way. ")
    if against == "baseline":
        body = [[c["dataset"], c["pair"], c["preset"], pct(c["paper_gain"], signed=True), *_gain_cells(c),
                 c.get("magnitude") or "", _times(c.get("se_over_baseline_train_time")),
                 pct(c["se_minus_ensemble"]["mean"], signed=True) if c.get("se_minus_ensemble") else "",
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
                 *([pct((c.get("votes") or {}).get(side, {}).get(vote)) for side, vote in rules] if show_votes
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


def _sensitivity_section(doc: dict) -> list[str]:
    """The verdicts another interval method would change: which verdicts are fragile, and under what."""
    method = doc.get("interval_method")
    if not method:
        return []
    fragile = document.fragile(doc)
    lines = ["## How fragile are the verdicts?", "",
             f"Every interval here is {method['description']}; {method['coverage']}. Each verdict decided by an "
             "interval is recomputed under " + "; ".join(f"`{n}` ({d})" for n, d in method["alternatives"].items())
             + f": {len(fragile)} of {document.judged(doc)} would change.", ""]
    if fragile:
        body = [[f["what"], f["verdict"], "; ".join(f"{m}: {v}" for m, v in f["under"].items())] for f in fragile]
        lines += [tabulate(body, headers=["Row or claim", "Verdict", "Under another method"], tablefmt="github"), ""]
    return lines


def _throughput_section(doc: dict) -> list[str]:
    """The cost claims (`sharens.judge.throughput`): each pair's step-time ratios over paired rounds, per device, with
    their FLOP ratios, bounds and verdicts; then each row's training cost as its cells' steps times its step."""
    measured = doc.get("throughput") or []
    if not measured:
        return []
    body = []
    for m in measured:
        for c in m["claims"]:
            body.append([m["dataset"], m["pair"], m["device"], c["title"],
                         f"{c['ratio']:.3f}x [{c['low']:.3f}, {c['high']:.3f}]",
                         "" if c["flop_ratio"] is None else f"{c['flop_ratio']:.3f}x",
                         f"{'≤' if c['at_most'] else '≥'} {c['bound']:.2f}x", c["verdict"]])
    costs = _training_costs(doc)
    lines = ["## Throughput: what SE costs", "",
             f"Step times of each pair's networks as their cells build and train them (the table's batch, the "
             f"cells' data, one thread on a CPU), timed in {measured[0]['rounds']} paired rounds: every loop of a "
             "round back to back, in rotating order, so a busy machine's slow spells cancel in the round's ratios. "
             "Ratio: the median over rounds, with the 95% t interval of the mean log-ratio. The FLOP ratio is the "
             "floor a ratio can reach. Verdict: `within tolerance` when the whole interval is on the bound's side, "
             "`exceeds` (or `falls short`, for an ensemble's cost) when it is wholly past it, else `inconclusive`; "
             "SE's bound is 1 + its heads' FLOP share + the table's margin.", "",
             tabulate(body, headers=["Data set", "Pair", "Device", "Claim", "Ratio [95% CI]", "FLOP ratio",
                                     "Bound", "Verdict"], tablefmt="github"), ""]
    if costs:
        lines += ["Training cost to each row's accuracy, relative to SE's: the mean steps its cells trained times "
                  "its measured step time (a snapshot ensemble trains the baseline's network; DSN and an ensemble "
                  "their own), on the first device listed above.", "",
                  tabulate(costs, headers=["Data set", "Pair", "Preset", "Row", "Mean steps", "Cost / SE's"],
                           tablefmt="github"), ""]
    return lines


def _training_costs(doc: dict) -> list[list[str]]:
    step = {}
    for m in doc.get("throughput") or []:
        for variant, entry in m["variants"].items():
            step.setdefault((m["dataset"], m["pair"], variant), float(np.median(entry["train_seconds"])))
    network = {"snapshot": "baseline", "se_weighted": "se"}
    rows = []
    by_pair = {}
    for r in doc["rows"]:
        if r.get("pair") and r.get("steps_mean"):
            by_pair.setdefault((r["dataset"], r["pair"], r["preset"]), []).append(r)
    for (dataset, pair, preset), found in by_pair.items():
        cost = {r["variant"]: r["steps_mean"] * step[(dataset, pair, network.get(r["variant"], r["variant"]))]
                for r in found if (dataset, pair, network.get(r["variant"], r["variant"])) in step}
        if "se" not in cost:
            continue
        rows += [[dataset, pair, preset, r["model"], f"{r['steps_mean']:,.0f}",
                  f"{cost[r['variant']] / cost['se']:.2f}x"] for r in found if r["variant"] in cost]
    return rows


def _diversity_section(doc: dict) -> list[str]:
    """How often two voters disagree: within a tap, across taps, and between independent members."""
    rows = [r for r in doc["rows"] if r.get("disagreement")]
    if not rows:
        return []
    body = [[r["dataset"], r["model"], r.get("preset") or "", pct(r["disagreement"]["all"]),
             pct(r["disagreement"]["within_group"]), pct(r["disagreement"]["across_groups"])] for r in rows]
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
    body = [[r["dataset"], r["model"], r.get("preset") or "", pct(r["accuracy"]["mean"])]
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
    recorded an analysis (`sharens.model.analysis`), means over seeds."""
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
    body = [[r["dataset"], r["model"], r.get("preset") or "", pct(r["accuracy"]["mean"])]
            + [pct(r["tap_accuracy"].get(t)) for t in taps] for r in rows]
    return ["## Accuracy of the heads on each tap", "",
            "Mean test accuracy of the heads on each tap (shallow to deep), beside the row's vote.", "",
            tabulate(body, headers=["Data set", "Model", "Preset", "Vote"] + taps, tablefmt="github"), ""]


def _votes_section(doc: dict) -> list[str]:
    """Every registered vote of the rows with several voters, beside the vote that gives the row's accuracy."""
    rows = [r for r in doc["rows"] if r.get("votes") and r["variant"] != "baseline" and r["accuracy"]["n"]]
    names = [name for name in VOTES if any(r["votes"].get(name) is not None for r in rows)]
    if not rows or not names:
        return []
    body = [[r["dataset"], r["model"], r["preset"], pct(r["accuracy"]["mean"])]
            + [pct(r["votes"].get(name)) for name in names] for r in rows]
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


# in report order
SECTIONS = (_health_section, _sweep_section, _tap_section, _gradient_section, _claims_section, _sensitivity_section,
            _throughput_section, _votes_section,
            _diversity_section, _metrics_section, _calibration_section, _taps_calibration_section)
