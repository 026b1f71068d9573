"""Cell records of earlier schemas, read as today's, so stored results stay readable.

Before the work-order schema a record named its row by display name and `kind`,
kept its settings in `config`, stored the hard vote and best/last head as
separate keys, and kept no per-row outcomes. `upgrade` fills in `pair`,
`variant`, `spec` (the parts a report reads), `votes`, `metrics` and the one
health rule it can still apply (too few epochs); the statistics that need
per-row outcomes say that such cells lack them. An init worded as an earlier
revision worded it reads in today's words, and an analysis reads the record's measure of the
own vote.
"""

from __future__ import annotations

from sharens.model.ensemble import DEFAULT_INIT
from sharens.suite.health import DIVERGED, MIN_EPOCHS, NOT_RECORDED, UNDER_TRAINED, judge_classic
from sharens.suite.table import Table

_VOTE_KEYS = {"hard": "hard_vote_accuracy", "best_head": "best_head_accuracy", "last_head": "last_head_accuracy"}


# Earlier wordings of an init, as records of their revisions hold them: {then: today's}. From 9dcb3bf until
# 9bc021a made every default-initialised backbone say DEFAULT_INIT, ConvNet spelled it out.
_INIT_WORDING = {"PyTorch default (Kaiming-uniform, a = sqrt 5; bias uniform in ±1/sqrt(fan_in))": DEFAULT_INIT}


def upgrade(record: dict, table: Table) -> dict:
    """Today's fields of an older record, derived afresh each time (so a rebuilt document stays upgradable).

    An older record is one with `kind`, which today's records never have, or one whose init is worded as an
    earlier revision worded it (so one init reads as one in a report).
    """
    if record.get("init") in _INIT_WORDING:
        record = {**record, "init": _INIT_WORDING[record["init"]]}
    record = _own_vote_measured_once(record)
    if "kind" not in record:
        return record
    record = dict(record)
    variant = record["kind"]
    record["variant"] = variant
    record["pair"] = None if variant == "classic" else _pair_of(table, record["model"], variant)
    config = record.get("config") or {}
    if variant == "classic":
        record["spec"] = {"classic": {"estimator": config.get("estimator"), "inputs": config.get("inputs")}}
    else:
        record["spec"] = {"network": {"optimizer": config.get("preset"), "speed": config.get("speed") or {},
                                      "augment": config.get("augment"), "members": config.get("members", 1)}}
    epochs = config.get("epochs")
    if variant == "classic":
        record["health"] = judge_classic(record)
    elif epochs is not None and epochs < MIN_EPOCHS:
        record["health"] = {"status": UNDER_TRAINED, "evidence": f"{epochs} epoch(s): too few to see convergence"}
    else:
        record["health"] = {"status": NOT_RECORDED, "evidence": f"an older run: {epochs} epochs, no training curve "
                            "recorded, so convergence cannot be checked; rerun the cell"}
    if record.get("status") == "diverged":
        record["health"] = {"status": DIVERGED, "evidence": f"at step {record.get('diverged_at_step')}"}
    if record.get("status") == "ok":
        record["metrics"] = {"accuracy": record["accuracy"]}
        if variant != "classic":
            primary = "accuracy_weighted" if variant == "se_weighted" else "soft"
            votes = {primary: {"accuracy": record["accuracy"]}}
            if "soft_vote_accuracy" in record:
                votes["soft"] = {"accuracy": record["soft_vote_accuracy"]}
            votes.update({name: {"accuracy": record[key]} for name, key in _VOTE_KEYS.items()
                          if record.get(key) is not None})
            record["votes"] = votes
    return record


def _own_vote_measured_once(record: dict) -> dict:
    """An analysis from before it took the record's measure of the cell's own vote (it measured the vote again in
    float64, and a tie or a near-collapsed net could read otherwise) reads the record's."""
    analysis, metrics = record.get("analysis"), record.get("metrics")
    own = ((analysis or {}).get("calibration") or {}).get("vote")
    if not own or not metrics or own.get("before") == metrics:
        return record
    calibration = {**analysis["calibration"], "vote": {**own, "before": dict(metrics)}}
    return {**record, "analysis": {**analysis, "calibration": calibration}}


def _pair_of(table: Table, label: str, variant: str) -> str:
    for pair in table.pairs:
        names = {"baseline": [pair.name], "se": [pair.se_name], "se_weighted": [pair.weighted_name],
                 "independent": [pair.ensemble_name(k) for k in range(1, pair.independent_ensemble + 1)]}
        if label in names.get(variant, []):
            return pair.name
    raise ValueError(f"{table.id}: a stored cell names row {label!r} ({variant}), which the table no longer has")
