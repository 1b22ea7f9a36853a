"""Holm and Benjamini-Hochberg adjustment over a family of p-values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bnbench.analysis.multiplicity import adjust, family_level, holm


def test_holm_by_hand():
    # Sorted 0.01, 0.02, 0.04 times 3, 2, 1 -> 0.03, 0.04, 0.04 (monotone), in input order.
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def test_adjust_keeps_missing_values_out_of_the_family():
    assert adjust([0.01, None, 0.02]) == pytest.approx([0.02, None, 0.02])
    raw = [0.01, 0.04, 0.03, 0.2]
    assert adjust(raw, "bh") == pytest.approx(list(stats.false_discovery_control(raw)))
    assert adjust([None, None]) == [None, None]


def test_holm_controls_the_family_wise_error_under_the_null():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=(4000, 10))
    raw_any = np.mean(np.any(p < 0.05, axis=1))
    adjusted_any = np.mean([min(holm(row)) < 0.05 for row in p])
    assert raw_any > 0.3 and adjusted_any <= 0.05 + 0.01


def test_family_level_is_bonferroni():
    assert family_level(5) == pytest.approx(0.99)
    assert family_level(1) == pytest.approx(0.95)


@pytest.mark.parametrize(("args", "message"), [
    (([0.1], "sidak"), "not one of holm, bh"), (([1.5],), r"must lie in \[0, 1\]"),
])  # fmt: skip
def test_bad_adjustments_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        adjust(*args)
    with pytest.raises(ValueError, match="at least one test"):
        family_level(0)


def test_bh_controls_the_family_wise_error_under_the_global_null():
    # With every null true, a false discovery is any rejection, so BH's rate of rejecting any of
    # 25 independent uniform p-values is its false discovery rate: alpha exactly (Simes), here
    # within 4 Monte-Carlo standard errors (0.0031 each over 5,000 families).
    rng = np.random.default_rng(1)
    p = rng.uniform(size=(5_000, 25))
    smallest = [np.min(np.asarray(adjust(list(row), "bh"), dtype=float)) for row in p]
    rejects_any = np.mean(np.asarray(smallest) < 0.05)
    assert rejects_any <= 0.05 + 4 * np.sqrt(0.05 * 0.95 / 5_000)
    assert rejects_any > 0.035  # and it is not conservative: the level is used
