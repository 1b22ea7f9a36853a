"""Replication: a verdict re-derived on disjoint halves of the seeds and leave-one-out."""

from __future__ import annotations

import pytest

from bnbench.analysis.replication import replicate
from bnbench.claims.verdicts import Value, decide, interval


def rule(values):
    return decide(interval(values), 0.0, "above")


def seeds(*numbers: float) -> list[Value]:
    return [Value(seed, x) for seed, x in enumerate(numbers)]


def test_halves_of_a_clear_effect_replicate():
    found = replicate(seeds(1.0, 1.2, 0.9, 1.1, 1.05, 0.95, 1.15, 0.85), rule)
    assert found.verdict == "supported" and found.parts == ("supported", "supported")
    assert found.settled and found.text() == "replicates 2/2 halves"


def test_a_verdict_carried_by_one_seed_does_not_replicate_leave_one_out():
    found = replicate(seeds(0.2, 0.25, 0.22, 0.21, 0.24, 0.23), rule, "leave_one_out")
    assert found.verdict == "supported" and found.agree == 6
    shaky = replicate(seeds(0.05, 0.3, -0.02, 0.2, 0.1, 0.15), rule, "leave_one_out")
    assert not shaky.settled and shaky.text().startswith("replicates ")
    assert shaky.text().endswith("/6 leave-one-out")


def test_bad_replication_inputs_are_refused():
    with pytest.raises(ValueError, match="at least 2 seeds; got 1"):
        replicate(seeds(1.0), rule)
    with pytest.raises(ValueError, match="not one of halves"):
        replicate(seeds(1.0, 2.0), rule, "thirds")  # type: ignore[arg-type]
