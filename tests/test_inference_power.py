"""Power, seed counts from a power argument, and what an inconclusive interval rules out."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bnbench.analysis.inference import Interval, intervals
from bnbench.analysis.power import power, rules_out, seeds_for_power


def test_t_power_matches_a_simulation_of_the_verdict_rule():
    rng = np.random.default_rng(3)
    data = rng.normal(0.5, 1.0, size=(20_000, 10))
    low, _, _ = intervals(data, kind="continuous")
    assert power(10, 1.0, 0.5) == pytest.approx(float(np.mean(low > 0)), abs=0.01)


def test_seed_count_for_80_percent_power():
    n = seeds_for_power(1.0, 1.0)
    assert power(n, 1.0, 1.0) >= 0.8 > power(n - 1, 1.0, 1.0)
    assert n == 10  # the textbook paired t: δ/σ = 1 needs 10 pairs at two-sided 5%
    assert seeds_for_power(1.0, 0.5) > n
    # Exact tests cannot decide below 6 seeds, so they need more.
    assert seeds_for_power(1.0, 1.0, kind="grid") >= max(n, 6)
    assert power(5, 1.0, 5.0, kind="grid") == 0.0


def test_bad_power_inputs_are_refused():
    with pytest.raises(ValueError, match="sd > 0"):
        power(5, 0.0, 1.0)
    with pytest.raises(ValueError, match="no seed count up to"):
        seeds_for_power(1.0, 1e-4)


def test_inconclusive_says_what_it_rules_out():
    found = Interval(0.01, -0.02, 0.04, 6)
    out = rules_out(found, 0.0, 0.05)
    assert (out.above, out.below) == pytest.approx((0.04, 0.02))
    assert not out.underpowered
    assert "larger than 0.040" in out.sentence() and "adequately powered" in out.sentence()
    wide = rules_out(Interval(0.01, -0.3, 0.4, 3), 0.0, 0.05)
    assert wide.underpowered and "not enough seeds" in wide.sentence()
    open_end = rules_out(Interval(1.0, 0.5, math.inf, 6, ("lower",)), 1.0, 0.05)
    assert open_end.underpowered and "below the threshold larger than 0.500" in open_end.sentence()
    with pytest.raises(ValueError, match="must be positive; got 0"):
        rules_out(found, 0.0, 0)
