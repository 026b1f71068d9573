"""Cell records -> the result document of a table (what `<table>.json` holds; schema in README.md).

Rows come from `Table.rows`, the one enumeration of a table's rows, and cells
are matched to them by (pair, variant), never by display name. Votes and
metrics are whatever the registries hold (`sharens.model.voting`, `sharens.model.metrics`).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from sharens import provenance
from sharens.judge import coverage, legacy, stats, throughput
from sharens.judge.claims import CLAIMS, kind
from sharens.model import analysis
from sharens.model.ensemble import tap_of
from sharens.model.metrics import METRICS
from sharens.model.voting import VOTES
from sharens.suite import health
from sharens.suite.store import Outcomes
from sharens.suite.table import CITED, Row, Table

SCHEMA = "sharens.table/3"


def _mean(records: list[dict], key: str) -> float | None:
    values = [r[key] for r in records if r.get(key) is not None]
    return float(np.mean(values)) if values else None


def _ok(records: list[dict]) -> list[dict]:
    return [r for r in records if r["status"] == "ok"]


def _status(records: list[dict]) -> str:
    bad = [r for r in records if r["status"] != "ok"]
    if not bad:
        return "ok"
    steps = ", ".join(str(r.get("diverged_at_step")) for r in bad)
    return f"{bad[0]['status']} ({len(bad)}/{len(records)} seeds, at step {steps})"


def row_status(row: dict) -> str:
    """What a row's Status says: its run's trouble ("diverged (…)", "cited, not re-run") first, else its health
    status, so a row without a paper number (no verdict to carry it) still shows a collapsed or under-trained cell."""
    if row["status"] != "ok":
        return row["status"]
    return (row.get("health") or {}).get("status", health.OK)


def _comparable(table: Table, dataset: str, records: list[dict]) -> bool:
    """Were these cells run on the paper's split sizes (not a partial copy, not a profile's slice)?"""
    split = table.paper_split.get(dataset)
    return split is None or all((r["n_train"], r["n_test"]) == tuple(split) for r in records)


def _metric_mean(name: str, ok: list[dict], outcomes: Outcomes | None) -> float | None:
    """Mean over seeds of a registered metric: as the cell recorded it, or (a metric registered after the cell
    ran) computed now from the cell's stored float16 class probabilities."""
    values = []
    for record in ok:
        value = (record.get("metrics") or {}).get(name)
        arrays = outcomes.get(record) if value is None and outcomes else None
        if arrays is not None and name == "accuracy":  # the stored predictions, never rounded probabilities
            value = 100.0 * float(np.mean(arrays["predicted"] == arrays["y"]))
        elif arrays is not None and "probabilities" in arrays:
            value = METRICS[name].compute(torch.from_numpy(arrays["probabilities"].astype(np.float32)),
                                          torch.from_numpy(arrays["y"].astype(np.int64)))
        if value is not None and np.isfinite(value):
            values.append(value)
    return float(np.mean(values)) if values else None


def _by_seed(records: list[dict]) -> dict[int, float]:
    return {r["seed"]: r["accuracy"] for r in _ok(records)}


def _correct(records: list[dict], outcomes: Outcomes | None) -> dict[int, np.ndarray]:
    """{seed: per-row correctness} of the finished cells, if every one of them kept its outcomes."""
    found = {r["seed"]: (outcomes.get(r) if outcomes else None) for r in _ok(records)}
    if not found or any(a is None for a in found.values()):
        return {}
    return {seed: a["predicted"] == a["y"] for seed, a in found.items()}


def _unhealthy(records: list[dict]) -> dict | None:
    """The health status a row or claim gets instead of a verdict, with its evidence; None if all are fit."""
    judged = [(r, health.judge_cell(r)) for r in records]
    bad = [(r, h) for r, h in judged if h["status"] != health.OK]
    if not bad:
        return None
    (first, judgement), status = bad[0], bad[0][1]["status"]
    label = f"{status} ({judgement.get('cause', health.BUDGET)})" if status == health.UNDER_TRAINED else status
    return {"status": label, "cells": len(bad), "of": len(records),
            "evidence": f"{first['model']} seed {first['seed']}: {judgement['evidence']}"}


def _row(table: Table, dataset: str, row: Row, preset: str | None, records: list[dict],
         outcomes: Outcomes | None) -> dict:
    ok = _ok(records)
    paper = table.paper.get(row.label, {}).get(dataset)
    values = [r["accuracy"] for r in ok]
    accuracy = stats.summarize(values)
    correct = _correct(records, outcomes)
    per_row = np.stack(list(correct.values())) if correct else None

    def judged(method: str) -> tuple[dict | None, str | None]:
        interval = stats.accuracy_interval(per_row, values, records[0]["n_test"], method) if ok else None
        return interval, stats.row_verdict(interval, len(values), paper, table.tolerance)

    interval, verdict = judged(stats.PRIMARY)
    unhealthy = _unhealthy(records)
    sensitivity = None  # set where the interval decides the verdict
    if not _comparable(table, dataset, records):
        verdict = stats.NOT_COMPARABLE
    elif unhealthy:
        verdict = unhealthy["status"]
    elif verdict is not None:
        sensitivity = {method: other for method in stats.ALTERNATIVES if (other := judged(method)[1]) != verdict}
    return {
        "dataset": dataset, "model": row.label, "pair": row.pair, "variant": row.variant, "preset": preset,
        "paper": paper,
        "quoted_from": table.quoted.get(row.label) if paper is not None else None,  # a quote is of a number
        "accuracy": accuracy,
        "interval": interval,
        "seeds": [r["seed"] for r in ok],  # of accuracy's values, in order
        "delta": accuracy["mean"] - paper if paper is not None and values else None,
        "verdict": verdict if paper is not None and values else None,
        # {alternative method: the verdict it would give} where that differs; None where no interval decides
        "sensitivity": sensitivity if paper is not None and values else None,
        "status": _status(records),
        "health": unhealthy or {"status": health.OK},
        "metrics": {name: _metric_mean(name, ok, outcomes) for name in METRICS},
        "votes": {name: _mean([r["votes"][name] for r in ok if name in r.get("votes", {})], "accuracy")
                  for name in VOTES} if row.variant not in ("classic",) else {},
        "train_seconds": _mean(records, "train_seconds"),
        "train_samples_per_s": _mean(records, "train_samples_per_s"),
        "eval_samples_per_s": _mean(records, "eval_samples_per_s"),
        "params": records[0].get("params"),
        "flops_per_sample": records[0].get("flops_per_sample"),
        "epochs_run": _mean([{"n": len(r.get("epoch_loss") or [])} for r in ok], "n") or None,
        # optimizer steps a cell trained (an ensemble's first member's: its timed step trains all K members)
        "steps_mean": _mean(ok, "steps"),
        "cells_with_outcomes": sum(1 for r in ok if r.get("outcomes")),
        "disagreement": _diversity(ok, outcomes),
        # cells from before the analysis have none (rerun with --force for it)
        "analysis": analysis.summarize([r["analysis"] for r in ok if r.get("analysis")]),
        **_extras(table, row, ok),
    }


def _extras(table: Table, row: Row, ok: list[dict]) -> dict:
    """What only some tables measure: first-layer gradient norms, per-tap head accuracy, the depth sweep."""
    extras = {}
    norms = [r["first_layer_gradient_norm"] for r in ok if r.get("first_layer_gradient_norm")]
    if norms:
        extras["first_layer_gradient_norm"] = {
            when: stats.summarize([n[when] for n in norms if when in n]) for when in ("init", "trained")}
        extras["first_layer_gradient_norm_per_head_weight"] = {
            when: stats.summarize([n[when] / n["head_weight"] for n in norms if when in n and "head_weight" in n])
            for when in ("init", "trained")}
    taps = [_per_tap(r) for r in ok if r.get("head_names") and r["variant"] not in ("independent", "snapshot")]
    if taps and len(taps[0]) > 1:
        extras["tap_accuracy"] = {tap: float(np.mean([t[tap] for t in taps])) for tap in taps[0]}
    inits = sorted({r["init"] for r in ok if r.get("init")})
    if inits:
        extras["init"] = "; ".join(inits)
    pair = next((p for p in table.pairs if p.name == row.pair), None)
    if pair is not None and pair.sweep and row.variant in ("baseline", "se", "dsn"):
        extras["sweep"] = {"family": pair.sweep[0], "depth": pair.sweep[1], "se": row.variant == "se",
                           "variant": row.variant}
    return extras


def _diversity(ok: list[dict], outcomes: Outcomes | None) -> dict | None:
    """Mean over seeds of the voters' pairwise disagreement (`analysis.disagreement`), from the stored per-row
    predictions of every head: cells of any age have them, not all have an analysis."""
    found = [(r, outcomes.get(r)) for r in ok if outcomes and r.get("head_names")]
    found = [analysis.disagreement(torch.from_numpy(a["heads"]), [tap_of(name) for name in r["head_names"]])
             for r, a in found if a is not None and "heads" in a]
    if not found or found[0]["all"] is None:
        return None
    return {key: (float(np.mean([d[key] for d in found])) if found[0][key] is not None else None)
            for key in found[0]}


def _per_tap(record: dict) -> dict[str, float]:
    """Mean test accuracy of the heads on each tap, in depth order."""
    by_tap: dict[str, list[float]] = {}
    for name, accuracy in zip(record["head_names"], record["head_accuracies"], strict=True):
        by_tap.setdefault(tap_of(name), []).append(accuracy)
    return {tap: float(np.mean(v)) for tap, v in by_tap.items()}


def _claims(table: Table, dataset: str, preset: str, groups: dict, outcomes: Outcomes | None) -> list[dict]:
    """Every registered claim (`sharens.judge.claims`) of every pair whose SE row and alternative both ran."""
    claims = []
    for pair in table.pairs:
        se = groups.get((dataset, pair.name, "se", preset), [])
        for claim_kind in CLAIMS.values():
            other = groups.get((dataset, pair.name, claim_kind.against, preset), [])
            if se and other:
                claims.append(_claim(table, dataset, preset, pair, claim_kind, se, other, groups, outcomes))
    return claims


def _claim(table: Table, dataset: str, preset: str, pair, claim_kind, se: list[dict], other: list[dict],
           groups: dict, outcomes: Outcomes | None) -> dict:
    paper = table.paper
    against = other[0]["model"]
    paper_gain = None
    if dataset in paper.get(pair.se_name, {}) and dataset in paper.get(against, {}):
        paper_gain = paper[pair.se_name][dataset] - paper[against][dataset]
    sides = (_correct(se, outcomes), _correct(other, outcomes), (_by_seed(se), _by_seed(other)))
    gain = stats.paired_gain(*sides)
    unhealthy = _unhealthy(other + se)
    claim = {
        "claim": claim_kind.name, "dataset": dataset, "pair": pair.name, "preset": preset, "against": against,
        "paper_gain": paper_gain, "gain": gain, "tolerance": table.tolerance,
        # the same gain under each alternative method: the sensitivity line's evidence
        "alternatives": {method: {key: found[key] for key in ("ci95", "p_value")}
                         for method in stats.ALTERNATIVES for found in [stats.paired_gain(*sides, method=method)]},
        # set once every claim of the table is known (Holm's correction needs them all)
        "verdict": stats.NOT_COMPARABLE if not _comparable(table, dataset, other + se)
        else unhealthy["status"] if unhealthy else None,
        "health": unhealthy or {"status": health.OK},
        "magnitude": None,  # like the direction, only for a claim that may have a verdict
        # finished runs only: a diverged run stops early and would flatter its side
        f"se_over_{claim_kind.against}_train_time": _ratio(_mean(_ok(se), "train_seconds"),
                                                           _mean(_ok(other), "train_seconds")),
    }
    if claim_kind.against == "dsn":  # supervision against voting: each model under the other's rule
        claim["votes"] = {"se": _vote_means(se), "dsn": _vote_means(other)}
    ensemble = groups.get((dataset, pair.name, "independent", preset))
    if ensemble and claim_kind.against == "baseline":
        claim["ensemble_model"] = ensemble[0]["model"]
        claim["se_minus_ensemble"] = stats.paired_gain(
            _correct(se, outcomes), _correct(ensemble, outcomes), (_by_seed(se), _by_seed(ensemble)))
        claim["ensemble_over_se_train_time"] = _ratio(
            _mean(_ok(ensemble), "train_seconds"), _mean(_ok(se), "train_seconds"))
    return claim


def _vote_means(records: list[dict]) -> dict[str, float | None]:
    """Mean accuracy over seeds of a row's soft vote and of its last head alone."""
    ok = _ok(records)
    return {name: _mean([r["votes"][name] for r in ok if name in r.get("votes", {})], "accuracy")
            for name in ("soft", "last_head")}


def _judge_claims(claims: list[dict]) -> None:
    """Holm-correct the direction p-values of the claims still open within each family (`stats.FAMILIES`), then
    give each its verdict; the same under every alternative method, for the sensitivity line."""
    open_claims = [c for c in claims if c["verdict"] is None]
    for claim in open_claims:
        claim["family"] = stats.FAMILIES[kind(claim).paper]
        claim["sensitivity"] = {}
    for family in stats.FAMILIES.values():
        members = [c for c in open_claims if c["family"] == family]
        for claim, adjusted in zip(members, stats.holm([c["gain"].get("p_value") for c in members]), strict=True):
            claim["gain"]["p_holm"] = adjusted
            claim["verdict"] = kind(claim).direction(stats.direction_verdict(claim["gain"], adjusted))
            claim["magnitude"] = stats.magnitude_verdict(claim["gain"], claim["paper_gain"], claim["tolerance"])
        for method in stats.ALTERNATIVES:
            gains = [{**c["gain"], **c["alternatives"][method]} for c in members]
            for claim, gain, adjusted in zip(members, gains, stats.holm([g["p_value"] for g in gains]), strict=True):
                verdict = kind(claim).direction(stats.direction_verdict(gain, adjusted))
                if verdict != claim["verdict"]:
                    claim["sensitivity"][method] = verdict


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def build(table: Table, profile: str, records: list[dict], outcomes: Outcomes | None = None,
          measured: list[dict] = ()) -> dict:
    """The whole result document of one table; `measured`: its pairs' step-time measurements, judged here."""
    records = [legacy.upgrade(r, table) for r in records]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in sorted(records, key=lambda r: r["seed"]):
        groups[(r["dataset"], r["pair"] or r["model"], r["variant"], r["preset"])].append(r)  # classic: no pair
    presets = sorted({r["preset"] for r in records if r["preset"]})
    planned = table.rows(table.profiles.get(profile))
    rows, claims = [], []
    for dataset in table.datasets:
        for row in planned:
            if row.variant == CITED and dataset in table.paper[row.label]:
                rows.append({"dataset": dataset, "model": row.label, "pair": None, "variant": CITED, "preset": None,
                             "paper": table.paper[row.label][dataset], "quoted_from": table.quoted.get(row.label),
                             "accuracy": None, "status": "cited, not re-run"})
        for preset in [None, *presets]:
            for row in planned:
                found = groups.get((dataset, row.pair or row.label, row.variant, preset))
                if found:
                    rows.append(_row(table, dataset, row, preset, found, outcomes))
        for preset in presets:
            claims += _claims(table, dataset, preset, groups, outcomes)
    _judge_claims(claims)
    not_run = _not_run(table, planned, {key[:3] for key in groups})
    wall = sum(r["provenance"]["wall_seconds"] for r in records)
    by_preset = defaultdict(float)
    for r in records:
        by_preset[r["preset"] or "classic"] += r["provenance"]["wall_seconds"]
    revisions = sorted({str(r["provenance"]["git_revision"]) for r in records})
    return {
        "schema": SCHEMA, "table": table.id, "title": table.title, "profile": profile,
        # as the cells ran them (a preset's definition may have changed since); where a pair changes a
        # preset (ResNet-110's warm-up) the settings say so, and this shows what most cells ran
        "presets": _presets_as_run(records),
        "tolerance": table.tolerance, "verdict_rules": stats.VERDICT_RULES, "health_rules": health.RULES,
        "interval_method": interval_method(),
        "votes": {name: vote.description for name, vote in VOTES.items()},
        "metrics": {name: metric.description for name, metric in METRICS.items()},
        "rows": rows, "claims": claims, "not_run": not_run,
        # every pair's step times on each device that measured them, judged by the table's tolerances
        "throughput": [{**{k: v for k, v in m.items() if k != "claims"},
                        "claims": throughput.judge(m, table.throughput)} for m in measured],
        "data": {r["dataset"]: r.get("data") for r in records},
        "cells": records,
        "cells_without_outcomes": sum(1 for r in _ok(records) if not r.get("outcomes")),
        "provenance": {**provenance.environment(), "devices": sorted({r["provenance"]["device"] for r in records}),
                       "seeds": sorted({r["seed"] for r in records}),
                       "cell_git_revisions": revisions,
                       "cell_wall_seconds_total": wall,
                       "cell_wall_seconds_by_preset": dict(sorted(by_preset.items()))},
    }


def fragile(doc: dict) -> list[dict]:
    """The verdicts of a document that another interval method would change: {what, verdict, under} each, rows
    then claims; `under` maps an alternative method to the verdict it gives."""
    rows = [{"what": f"{r['model']} ({r['preset'] or 'classic'}, {r['dataset']})", "verdict": r["verdict"],
             "under": r["sensitivity"]} for r in doc["rows"] if r.get("sensitivity")]
    found = [{"what": f"{kind(c).title} — {c['pair']} ({c['preset']}, {c['dataset']})", "verdict": c["verdict"],
              "under": c["sensitivity"]} for c in doc["claims"] if c.get("sensitivity")]
    return rows + found


def judged(doc: dict) -> int:
    """How many rows and claims of a document carry a verdict that an interval decided (not a health status)."""
    return sum(1 for item in doc["rows"] + doc["claims"] if item.get("sensitivity") is not None)


def interval_method() -> dict:
    """The method every interval and verdict of the document rests on, its simulated coverage, and the
    alternatives its sensitivity line tries."""
    simulated = coverage.stored()
    return {"name": stats.PRIMARY, "description": stats.METHODS[stats.PRIMARY].description,
            "coverage": coverage.summary(simulated) if simulated else "not simulated yet (python -m sharens coverage)",
            "min_coverage": simulated["min_coverage"] if simulated else None,
            "alternatives": {name: stats.METHODS[name].description for name in stats.ALTERNATIVES}}


def _not_run(table: Table, planned: list[Row], found: set[tuple]) -> list[dict]:
    """The `planned` rows that no cell stands for, under any preset: a run cut short or limited to some rows. A
    report names them, so that a missing row is never mistaken for one the table does not have."""
    return [{"dataset": dataset, "model": row.label, "paper": table.paper.get(row.label, {}).get(dataset)}
            for dataset in table.datasets for row in planned
            if row.variant != CITED and (dataset, row.pair or row.label, row.variant) not in found]


def _presets_as_run(records: list[dict]) -> dict[str, dict]:
    configs = defaultdict(list)
    for r in records:
        if r["preset"]:
            configs[r["preset"]].append(r["spec"]["network"]["optimizer"])
    return {name: max(found, key=found.count) for name, found in configs.items()}
