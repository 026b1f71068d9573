"""Statistics the report computes from stored per-row outcomes, without retraining."""

import numpy as np
import pytest

from sharens.document import _disagreement


def test_disagreement_within_and_across_taps():
    # 4 rows, heads L2/h0, L2/h1 (always agree) and L4/h0 (differs from both on 2 of 4 rows)
    heads = np.array([[0, 0, 0], [1, 1, 0], [2, 2, 2], [3, 3, 1]])
    d = _disagreement(heads, ["L2/h0", "L2/h1", "L4/h0"])
    assert d["within_tap"] == 0.0 and d["across_taps"] == pytest.approx(50.0)
    assert d["all"] == pytest.approx(100 / 3)
    members = _disagreement(heads[:, :2], ["member0", "member1"])
    assert members == {"all": 0.0, "within_tap": None, "across_taps": 0.0}
