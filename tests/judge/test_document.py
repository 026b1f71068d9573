"""Statistics the report computes from stored per-row outcomes, without retraining."""

import numpy as np
import pytest

from sharens.judge.document import _diversity
from sharens.model.evaluation import outcomes_sha256
from sharens.suite.store import Outcomes


def _cell(key: str, heads: np.ndarray, names: list[str]) -> tuple[dict, dict]:
    arrays = {"y": heads[:, 0], "predicted": heads[:, 0], "heads": heads}
    return {"key": key, "head_names": names, "outcomes": {"sha256": outcomes_sha256(arrays)}}, arrays


def test_disagreement_within_and_across_taps_from_stored_head_predictions():
    # 4 rows, heads L2/h0, L2/h1 (always agree) and L4/h0 (differs from both on 2 of 4 rows)
    heads = np.array([[0, 0, 0], [1, 1, 0], [2, 2, 2], [3, 3, 1]], dtype=np.uint8)
    se, se_arrays = _cell("se", heads, ["L2/h0", "L2/h1", "L4/h0"])
    d = _diversity([se], Outcomes({"se": se_arrays}))
    assert d["within_group"] == 0.0 and d["across_groups"] == pytest.approx(50.0)
    assert d["all"] == pytest.approx(100 / 3)
    # an ensemble's members are groups of their own: every pair is across
    ensemble, arrays = _cell("x2", heads[:, :2], ["member0", "member1"])
    assert _diversity([ensemble], Outcomes({"x2": arrays})) == {"all": 0.0, "within_group": None,
                                                                "across_groups": 0.0}


def test_every_report_section_is_in_the_report():
    """A section function left out of `SECTIONS` would never be rendered."""
    from sharens.report import sections

    defined = {f for name, f in vars(sections).items() if name.endswith("_section") and callable(f)}
    assert defined == set(sections.SECTIONS) and len(sections.SECTIONS) == len(defined)
