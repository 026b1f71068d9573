"""Cell health and the budget rule: judged from training data only, and a verdict never rests on an unfit cell."""

import math

import numpy as np
import pytest
import torch

from benchmarks import figure2_mnist, get_table
from sharens.execution.cell import build_model
from sharens.judge import document, legacy, stats
from sharens.model.backbones import build_backbone
from sharens.model.ensemble import DEFAULT_INIT, SharingEnsemble
from sharens.report import markdown as report
from sharens.report import plots, site
from sharens.suite import health
from sharens.suite.plan import plan
from sharens.train.loop import heldout_loss, train
from sharens.train.presets import PRESETS

LN2 = math.log(2)  # the prior entropy of two balanced classes


def _record(losses, accuracies, majority=50.0, entropy=LN2, **extra):
    return {"status": "ok", "epoch_loss": losses, "epoch_train_accuracy": accuracies, "majority_rate": majority,
            "prior_entropy": entropy, **extra}


def test_collapse_is_the_majority_rate_or_the_prior_entropy():
    learned = [0.69, 0.5, 0.4, 0.35, 0.33, 0.32]
    assert health.judge(_record(learned, [60, 70, 80, 85, 86, 86]))["status"] == health.OK
    assert health.judge(_record(learned, [50, 50, 50.5, 50, 50, 50.4]))["status"] == health.COLLAPSED
    stuck = [0.70, 0.695, 0.694, 0.694, 0.693, 0.693]  # ln 2: nothing beyond the class frequencies
    judged = health.judge(_record(stuck, [55, 56, 57, 57, 58, 58]))
    assert judged["status"] == health.COLLAPSED and "prior entropy 0.693" in judged["evidence"]


def test_under_training_is_a_still_falling_loss_or_too_few_epochs():
    falling = [1.0, 0.8, 0.6, 0.45, 0.35, 0.25]  # down 29% over the last epoch alone
    judged = health.judge(_record(falling, [60, 65, 70, 75, 80, 85]))
    assert judged["status"] == health.UNDER_TRAINED and "fell" in judged["evidence"]
    assert health.judge(_record(falling, [60, 70, 90, 99, 99.5, 99.6]))["status"] == health.OK  # fits its data
    assert health.judge(_record([0.6], [70]))["status"] == health.UNDER_TRAINED  # one epoch: cannot tell
    # a held-out stopping rule decides instead: stopped on its own (converged) is fit, at its cap is not
    stopped = dict(patience=3, heldout_loss=[0.7, 0.6, 0.5, 0.5, 0.5, 0.5])
    assert health.judge(_record(falling, [60] * 6, stopped="converged", best_epoch=3, **stopped))["status"] == "ok"
    capped = health.judge(_record(falling, [60] * 6, stopped="epochs", best_epoch=6, **stopped))
    assert capped["status"] == health.UNDER_TRAINED and "epoch cap" in capped["evidence"]


def test_an_ensemble_is_as_fit_as_its_worst_member():
    good = {"epoch_loss": [0.6, 0.4, 0.35, 0.34], "epoch_train_accuracy": [70, 80, 85, 85]}
    bad = {"epoch_loss": [0.6, 0.6, 0.6, 0.6], "epoch_train_accuracy": [50, 50, 50, 50]}
    record = {**_record(**{"losses": good["epoch_loss"], "accuracies": good["epoch_train_accuracy"]}),
              "variant": "independent", "member_curves": [good, bad]}
    assert health.judge_cell(record)["status"] == health.COLLAPSED


def _snapshots(cycles: list[list[float]], held: list[float] | None = None) -> dict:
    """A snapshot ensemble's record: cosine cycles, each loss falling steeply at its end, joined into one run."""
    curves = [{"epoch_loss": c, "epoch_train_accuracy": [80.0] * len(c)} for c in cycles]
    joined = [v for c in cycles for v in c]
    return {**_record(joined, [80.0] * len(joined), heldout_loss=held or []), "variant": "snapshot",
            "member_curves": curves}


def test_a_snapshot_ensemble_is_judged_as_one_cyclic_run():
    """Every cycle ends in a steep fall (the rate anneals), which the training-loss rule would read as
    under-training; the run is judged by its held-out loss, or by its snapshots' end-of-cycle losses."""
    cycles = [[0.9, 0.8, 0.5], [0.6, 0.55, 0.35], [0.45, 0.42, 0.34]]  # each falls >10% in its last epoch
    assert health.judge(_record(cycles[0], [80.0] * 3))["status"] == health.UNDER_TRAINED  # alone: falling
    rising = [0.8, 0.7, 0.6, 0.62, 0.65, 0.66, 0.7, 0.72, 0.75]  # best after cycle 2: trained past its best
    assert health.judge_cell(_snapshots(cycles, rising))["status"] == health.OK
    improving = health.judge_cell(_snapshots(cycles, [0.8 - 0.05 * i for i in range(9)]))
    assert improving["status"] == health.UNDER_TRAINED and "end of the last of 3 cycles" in improving["evidence"]
    # no held-out curve: the end-of-cycle losses 0.5, 0.35, 0.34 have levelled off; 0.5, 0.35, 0.2 have not
    assert health.judge_cell(_snapshots(cycles))["status"] == health.OK
    still = health.judge_cell(_snapshots([*cycles[:2], [0.45, 0.3, 0.2]]))
    assert still["status"] == health.UNDER_TRAINED and "cycles' ends" in still["evidence"]


def test_the_budget_rule_stops_on_held_out_loss_and_keeps_the_best_epoch():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 10, generator=g)
    y = (torch.rand(256, generator=g) < 0.5).long()  # pure noise: held-out loss can only get worse
    held = (torch.randn(64, 10, generator=g), (torch.rand(64, generator=g) < 0.5).long())
    model = SharingEnsemble(build_backbone("mlp", 10, widths=(64, 64)), 2, heads_per_tap=2)
    result = train(model, x, y, preset=PRESETS["tuned"], epochs=60, batch_size=32, seed=0, heldout=held,
                   patience=4)
    assert result.stopped == "converged" and len(result.epoch_loss) == result.best_epoch + 4 < 60
    assert len(result.heldout_loss) == len(result.epoch_loss) == len(result.epoch_train_accuracy)
    assert min(result.heldout_loss) == result.heldout_loss[result.best_epoch - 1]
    assert heldout_loss(model, *held) == pytest.approx(min(result.heldout_loss), rel=1e-5)  # best weights kept


def test_full_profiles_declare_a_budget_rule_and_specs_carry_it():
    for table_id in ("table7_uci", "table6_imdb", "table4_gtzan", "table3_cifar10"):
        full = get_table(table_id).profile("full")
        assert full.patience and full.holdout == 0.1 and full.stop_on == "heldout_loss", table_id
    table = get_table("table7_uci")
    spec = next(s for s in plan(table, table.profile("full"), 1, ["tuned"], ["yeast"]) if s.network)
    assert spec.network.patience == 10 and spec.network.holdout == 0.1 and spec.network.epochs == 200
    # sEMG's 144 held-out rows cannot choose epochs: its networks train to convergence on all of train
    table = get_table("table5_semg")
    assert "converged on it" in table.profile("full").description
    specs = {s.row.label: s.network for s in plan(table, table.profile("full"), 1, ["tuned"], ["semg"]) if s.network}
    assert specs["DNN"].stop_on == "train_loss" and specs["DNN"].holdout == 0 and specs["DNN"].patience == 10
    assert specs["DNN+SE (accuracy-weighted vote)"].holdout == 0.1  # its vote weights still need unseen rows


def _noise_task(rows=256):
    g = torch.Generator().manual_seed(0)
    return torch.randn(rows, 10, generator=g), (torch.rand(rows, generator=g) < 0.5).long()


def test_the_training_loss_rule_trains_until_the_net_fits_its_rows_and_keeps_the_final_weights():
    x, y = _noise_task(64)  # 64 noisy rows: a wide net memorises them
    torch.manual_seed(0)
    model = SharingEnsemble(build_backbone("mlp", 10, widths=(256, 256)), 2, heads_per_tap=2)
    result = train(model, x, y, preset=PRESETS["tuned"], epochs=300, batch_size=16, seed=0, patience=5,
                   stop_on="train_loss")
    assert result.stopped == "fitted" and result.epoch_train_accuracy[-1] >= 99 and len(result.epoch_loss) < 300
    assert result.best_epoch is None and health.judge(
        _record(result.epoch_loss, result.epoch_train_accuracy, patience=5, stop_on="train_loss"))["status"] == "ok"


def test_the_training_loss_rule_stops_on_a_plateau():
    x, y = _noise_task()
    torch.manual_seed(0)
    model = SharingEnsemble(build_backbone("mlp", 10, widths=(2,)), 2, heads_per_tap=1)  # too small to fit noise
    result = train(model, x, y, preset=PRESETS["tuned"], epochs=500, batch_size=32, seed=0, patience=5,
                   stop_on="train_loss")
    assert result.stopped == "converged" and len(result.epoch_loss) < 500
    best = min(result.epoch_loss[:-5])
    assert all(loss > 0.99 * best for loss in result.epoch_loss[-5:])  # no 1% improvement in the last 5 epochs
    with pytest.raises(ValueError, match="stop_on"):
        train(model, x, y, preset=PRESETS["tuned"], epochs=1, batch_size=32, seed=0, stop_on="test_accuracy")


def test_figure2_controls_xavier_init_and_a_deeply_supervised_net():
    table = figure2_mnist.TABLE
    specs = {s.row.label: s for s in plan(table, table.profile("quick"), 1, ["tuned"], ["mnist"])}
    dsn = specs["tanh CNN-20 DSN"].network
    assert dsn.heads_per_tap == 1 and dsn.vote == "last_head"
    assert specs["tanh CNN (Xavier)-20"].network.options["init"] == "xavier_tanh"
    plain = build_backbone("convnet", (1, 8, 8), **specs["tanh CNN-20"].network.options)
    xavier = build_backbone("convnet", (1, 8, 8), **specs["tanh CNN (Xavier)-20"].network.options)
    assert "default" in plain.init and "Xavier" in xavier.init and "1.667" in xavier.init
    # as a cell builds it: uint8 MNIST pixels wrap the backbone, and the cell records the wrapped net's init
    pixels = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    assert "Xavier" in build_model(specs["tanh CNN (Xavier)-20"].network, pixels, 10).backbone.init
    # Glorot-uniform with gain 5/3 on a 64 -> 64 3x3 conv: bound = 5/3 * sqrt(6 / (2 * 576))
    weight = xavier.layers[5][0].weight
    assert weight.abs().max() <= 5 / 3 * math.sqrt(6 / 1152) + 1e-6 and weight.std() > 0.05


def test_every_backbone_states_the_init_it_draws():
    """A report's init line comes from the cells' records: each backbone must name what it draws, and a record
    of an earlier revision that worded the default init otherwise reads as today's, so one init reads as one."""
    resnet = build_backbone("cifar_resnet", (3, 32, 32), n=1)
    assert "Kaiming-normal" in resnet.init and "fan-out" in resnet.init
    stem = resnet.stem[0].weight  # 16 filters of 3x3: He fan-out std = sqrt(2 / (16 * 9))
    assert stem.std().item() == pytest.approx(math.sqrt(2 / 144), rel=0.15)
    assert build_backbone("convnet", (1, 8, 8), layers=[(4, 1)]).init == DEFAULT_INIT
    assert build_backbone("deep_lstm", (12,), hidden=5, layers=1, steps=4).init == DEFAULT_INIT
    earlier = {"init": "PyTorch default (Kaiming-uniform, a = sqrt 5; bias uniform in ±1/sqrt(fan_in))"}
    assert legacy.upgrade(earlier, figure2_mnist.TABLE)["init"] == DEFAULT_INIT
    assert legacy.upgrade({"init": "Xavier"}, figure2_mnist.TABLE)["init"] == "Xavier"


def test_no_verdict_rests_on_an_unfit_cell(tmp_path):
    """A row with one collapsed seed, and the claim built on it, get the health status, not a verdict."""
    table = get_table("table7_uci")
    spec = {"network": {"optimizer": {"name": "tuned", "lr0": 1, "lr_min": 1, "why": ""}}}

    def cell(model, variant, seed, accuracy, train_accuracy):
        return {"table": table.id, "dataset": "yeast", "pair": "DNN", "variant": variant, "model": model,
                "preset": "tuned", "seed": seed, "profile": "full", "n_train": 1038, "n_test": 446, "status": "ok",
                "accuracy": accuracy, "metrics": {"accuracy": accuracy}, "votes": {}, "spec": spec,
                "provenance": {"wall_seconds": 1.0, "device": "cpu", "git_revision": "x"},
                **_record([1.0, 0.8, 0.7, 0.69], [40, 50, 55, train_accuracy], majority=31.0, entropy=1.9)}

    records = [cell("DNN", "baseline", s, 55.0 + s, 31.5 if s == 1 else 60) for s in range(3)]
    records += [cell("DNN+SE", "se", s, 58.0 + s, 62) for s in range(3)]
    doc = document.build(table, "full", records)
    base = next(r for r in doc["rows"] if r["model"] == "DNN")
    se = next(r for r in doc["rows"] if r["model"] == "DNN+SE")
    assert base["verdict"] == health.COLLAPSED and base["health"]["cells"] == 1
    assert "seed 1" in base["health"]["evidence"] and se["verdict"] not in (health.COLLAPSED, None)
    (claim,) = doc["claims"]
    assert claim["verdict"] == health.COLLAPSED and "p_holm" not in claim["gain"]
    np.testing.assert_allclose(claim["gain"]["mean"], 3.0)
    assert "plotted in `table7_uci_curves.png`" in report.markdown(doc, table)
    # a row without a paper number (a control) has no verdict to carry its health: its Status and the index say it
    base.update(paper=None, delta=None, verdict=None)
    line = next(line for line in report.markdown(doc, table).splitlines() if line.startswith("| DNN "))
    assert line.split("|")[8].strip() == health.COLLAPSED
    assert site.verdicts(doc)[0][health.COLLAPSED] == 1
    for record in doc["cells"]:  # cells of a run that kept no curves: the report says none are plotted
        del record["epoch_loss"]
    assert "none of their cells recorded loss curves" in report.markdown(doc, table)
    assert plots.loss_curves(doc, tmp_path / "curves.png") is None


def test_a_scikit_learn_fit_stopped_by_its_iteration_cap_is_under_trained():
    """A capped solver that met its tolerance is ok, one its cap stopped (ConvergenceWarning) is under-trained, a
    capped fit of an older run that recorded neither has no verdict; a forest has no cap to judge."""
    from sharens.model import classic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = (x[:, 0] > 0).astype(int)

    def fitted(name, cap):
        solver = classic.fit_classic(classic.build_classic(name, 0, 10, cap, 1), x, y, cap)
        record = {"variant": "classic", "spec": {"classic": {"estimator": name, "max_iter": cap}}}
        return {**record, "solver": solver} if solver else record

    converged = fitted("logistic_regression", 2000)
    assert converged["solver"]["converged"] and health.judge_cell(converged)["status"] == health.OK
    capped = fitted("logistic_regression", 1)
    assert capped["solver"] == {"iterations": 1, "max_iter": 1, "converged": False}
    judged = health.judge_cell(capped)
    assert judged["status"] == health.UNDER_TRAINED and "cap of 1 iterations" in judged["evidence"]
    older = {name: value for name, value in converged.items() if name != "solver"}
    assert health.judge_cell(older)["status"] == health.NOT_RECORDED
    del older["spec"]["classic"]["max_iter"]  # a spec from before the cap was in it: the cap it ran with then
    assert "at 2000 iterations" in health.judge_cell(older)["evidence"]
    assert health.judge_cell(fitted("random_forest", None))["status"] == health.OK


def test_a_classic_cells_cap_enters_its_key_only_off_the_cap_it_was_stored_with():
    """Specs carry the solver's cap, the estimator's or the table's own; a cap that cells ran with before it was
    in the spec leaves their keys as they were, a changed one makes new cells (CIFAR-10's SGD linear SVM: 50 ->
    1,000 epochs; its logistic regression: 2,000 -> 10,000 L-BFGS steps, declared by Table 3)."""
    from dataclasses import replace

    table = get_table("table3_cifar10")
    specs = [s for s in plan(table, table.profile("smoke"), 1, ["tuned"], ["cifar10"]) if s.classic]
    by_estimator = {s.classic.estimator: s for s in specs}
    regression, svm = by_estimator["logistic_regression"], by_estimator["svm_linear_sgd"]
    assert regression.key_dict()["classic"]["max_iter"] == regression.classic.max_iter == 10_000
    regression = replace(regression, classic=replace(regression.classic, max_iter=2000))
    assert "max_iter" not in regression.key_dict()["classic"]
    assert svm.key_dict()["classic"]["max_iter"] == svm.classic.max_iter == 1000
    assert "max_iter" not in replace(svm, classic=replace(svm.classic, max_iter=50)).key_dict()["classic"]
    assert "max_iter" not in by_estimator["random_forest"].key_dict()["classic"]


def test_older_cells_without_curves_give_no_verdict():
    """A record of the schema before training curves: its convergence cannot be checked (one epoch is too few)."""
    from sharens.judge import legacy

    table = get_table("table6_imdb")

    def old(model, kind, epochs):
        return {"model": model, "kind": kind, "status": "ok", "accuracy": 80.0, "config": {"epochs": epochs}}

    assert legacy.upgrade(old("Deep LSTM", "baseline", 1), table)["health"]["status"] == health.UNDER_TRAINED
    assert legacy.upgrade(old("Deep CNN+SE", "se", 4), table)["health"]["status"] == health.NOT_RECORDED
    assert legacy.upgrade(old("Random Forest", "classic", None), table)["health"]["status"] == health.OK
    capped = {**old("Logistic Regression", "classic", None), "config": {"estimator": "logistic_regression"}}
    assert legacy.upgrade(capped, table)["health"]["status"] == health.NOT_RECORDED
    upgraded = legacy.upgrade(old("Deep CNN+SE", "se", 4), table)
    assert upgraded["pair"] == "Deep CNN" and upgraded["variant"] == "se"
    assert legacy.upgrade(upgraded, table) == upgraded  # a rebuilt document upgrades to the same record


def test_a_held_out_rule_that_keeps_an_early_epoch_is_judged_by_what_training_did_after_it():
    """Kept epoch 1 of 11: converged when the training loss went on falling while the held-out loss rose (it
    over-fit, which is what the rule stops), under-trained by an early stop when training stalled too."""
    falling = [0.9, 0.6, 0.5, 0.45, 0.42, 0.4, 0.39, 0.38, 0.37, 0.36, 0.35]
    overfit = health.judge(_record(falling, [60] * 11, patience=10, best_epoch=1, stopped="converged"))
    assert overfit["status"] == health.OK and "over-fitting" in overfit["evidence"]
    stalled = [0.9, 0.88, 0.89, 0.87, 0.88, 0.86, 0.87, 0.86, 0.85, 0.86, 0.85]
    early = health.judge(_record(stalled, [60] * 11, patience=10, best_epoch=1, stopped="converged"))
    assert early["status"] == health.UNDER_TRAINED and early["cause"] == health.EARLY_STOP
    assert "kept epoch 1 of 11" in early["evidence"]
    later = health.judge(_record(stalled, [60] * 11, patience=10, best_epoch=5, stopped="converged"))
    assert later["status"] == health.OK


def test_under_training_names_its_cause_the_epoch_budget_or_an_early_stop():
    """`(budget)` says our epochs ran out; a held-out rule that kept epoch 1 was not short of epochs."""
    cell = {"model": "DNN", "seed": 0, "variant": "baseline", "patience": 2, "stopped": "converged"}
    early = {**_record([0.3, 0.29, 0.3], [85, 86, 85], best_epoch=1), **cell}
    short = {**_record([0.3], [85]), **cell, "patience": None, "stopped": "epochs"}
    assert document._unhealthy([early])["status"] == "under-trained (early stop)"
    assert document._unhealthy([short])["status"] == "under-trained (budget)"


def test_every_registered_claim_is_judged_in_its_holm_family_and_only_the_papers_is_reproduced():
    """SE against its baseline, its DSN control and its snapshot ensemble, on the same seeds: three claims, Holm
    within the paper's claims and within ours; the paper's reads `reproduced`, ours read `holds`."""
    table = get_table("table7_uci")
    spec = {"network": {"optimizer": {"name": "tuned", "lr0": 1, "lr_min": 1, "why": ""}}}

    def cell(model, variant, seed, accuracy):
        return {"table": table.id, "dataset": "letter", "pair": "DNN", "variant": variant, "model": model,
                "preset": "tuned", "seed": seed, "profile": "full", "n_train": 16000, "n_test": 4000,
                "status": "ok", "accuracy": accuracy, "metrics": {"accuracy": accuracy}, "votes": {}, "spec": spec,
                "provenance": {"wall_seconds": 1.0, "device": "cpu", "git_revision": "x"},
                **_record([1.0, 0.8, 0.7, 0.69], [40, 50, 55, 60], majority=4.0, entropy=3.2)}

    records = [cell(model, variant, s, accuracy + 0.1 * s) for s in range(5) for model, variant, accuracy in (
        ("DNN", "baseline", 90.0), ("DNN+SE", "se", 95.0), ("DNN DSN", "dsn", 91.0),
        ("DNN snapshots x5", "snapshot", 99.0))]
    doc = document.build(table, "full", records)
    by_kind = {c["claim"]: c for c in doc["claims"]}
    assert set(by_kind) == {"se_beats_baseline", "se_beats_dsn", "se_beats_snapshot"}
    assert by_kind["se_beats_baseline"]["verdict"] == "reproduced"
    assert by_kind["se_beats_dsn"]["verdict"] == "holds" and by_kind["se_beats_dsn"]["against"] == "DNN DSN"
    assert by_kind["se_beats_snapshot"]["verdict"] == "reversed"
    assert by_kind["se_beats_dsn"]["paper_gain"] is None and by_kind["se_beats_dsn"]["magnitude"] is None
    # two Holm families: the paper's claim alone, and the suite's controls together
    assert by_kind["se_beats_baseline"]["family"] == stats.FAMILIES[True]
    assert by_kind["se_beats_dsn"]["family"] == by_kind["se_beats_snapshot"]["family"] == stats.FAMILIES[False]
    paper = by_kind["se_beats_baseline"]["gain"]
    assert paper["p_holm"] == pytest.approx(paper["p_value"])
    ours = [by_kind[name]["gain"] for name in ("se_beats_dsn", "se_beats_snapshot")]
    assert [g["p_holm"] for g in ours] == pytest.approx(stats.holm([g["p_value"] for g in ours]))
