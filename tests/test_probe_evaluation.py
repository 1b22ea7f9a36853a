"""The runtime probe evaluates only the first examples of large splits and scales what it timed
to the whole splits: a CIFAR-10 conv stack's estimate would otherwise spend minutes per probe
evaluating 10,000 test images twenty times over."""

from __future__ import annotations

import pytest

from bnbench.ablate.probe import _pass_costs
from bnbench.config.schema import RunSpec
from bnbench.results import rundir
from bnbench.train.loop import train
from tests.support.specs import TINY_SPEC

# One evaluation of n examples costs A + C n seconds; the first evaluation of a model sets its
# functions up (SETUP); data loading and building cost FIXED. The real splits hold V and T.
A, C, SETUP, FIXED, COMPILE = 0.05, 0.001, 0.3, 1.0, 5.0
V, T = 5000, 10000


def _evaluation(n: int) -> float:
    return A + C * n


def _summary(points: int, val: int, test: int, compiled: bool = False) -> rundir.RunSummary:
    """A probe pass's summary: `points` evaluation points of `val` validation examples and the
    final test of `test`, as a run evaluating at most that many would record them."""
    evaluated = {name: [kept, whole] for name, kept, whole in (("val", val, V), ("test", test, T))
                 if kept < whole}  # fmt: skip
    return rundir.RunSummary.model_validate({
        "run_id": "probe", "status": "completed", "backend": "jax", "total_steps": 40,
        "steps_per_epoch": 40, "step_time_ms": 2.0, "evaluated": evaluated,
        "timings": {"imports": 4.0, "data": FIXED, "build": 0.0, "writing": 0.0,
                    "compile_and_setup": COMPILE if compiled else 0.0, "steps": 0.08,
                    "evaluation": SETUP + points * _evaluation(val) + _evaluation(test)},
    })  # fmt: skip


def _plan(cut: int) -> dict:
    config = {"backend": "jax", "model": {}, "dataset": {}, "training": {"batch_size": 8}}
    every = {"first": 20, "again": 20, "often": 2, "wide": 20}
    return {name: {"evaluated_at_most": cut * (2 if name == "wide" else 1),
                   "specs": [{**config, "training": {"eval_every": step}}]}
            for name, step in every.items()}  # fmt: skip


def _passes(val: int, test: int, wide: rundir.RunSummary | None) -> dict:
    """The four passes' summaries of one process: the first three evaluating `val` and `test`
    examples, then `wide` (None: the fourth pass did not run)."""
    return {
        "first": [_summary(2, val, test, compiled=True)],
        "again": [_summary(2, val, test)],
        "often": [_summary(20, val, test)],
        "wide": [wide],
    }


def _whole_run(points: int) -> float:
    """What a real run of `points` evaluation points costs besides its steps."""
    return FIXED + SETUP + points * _evaluation(V) + _evaluation(T)


def test_a_cut_probe_is_scaled_to_the_whole_splits():
    costs = _pass_costs(_passes(1024, 1024, _summary(2, 2048, 2048)), _plan(1024))
    assert costs is not None
    fixed, step_ms, evaluation, compiled = costs
    assert evaluation == pytest.approx(_evaluation(V))
    assert step_ms == 2.0 and compiled == pytest.approx(COMPILE)
    for points in (2, 7, 50):  # the estimate charges (points + 1) evaluations
        assert fixed + (points + 1) * evaluation == pytest.approx(_whole_run(points))


def test_the_fourth_pass_adds_only_its_evaluation_time():
    """Set-up time that varies between passes (the steps' pace moves Keras' fit overhead by
    seconds under load) is not read as the cost of evaluating more examples."""
    noisy = _summary(2, 2048, 2048)
    noisy.timings["compile_and_setup"] += 9.0
    costs = _pass_costs(_passes(1024, 1024, noisy), _plan(1024))
    assert costs is not None
    assert costs[2] == pytest.approx(_evaluation(V))


def test_without_the_fourth_pass_a_cut_probe_times_the_cut_splits():
    """The cut pass's evaluation alone (the fourth did not run) times the cut splits: never
    more than the probe measured."""
    costs = _pass_costs(_passes(1024, 1024, None), _plan(1024))
    assert costs is not None
    assert costs[2] == pytest.approx(_evaluation(1024))


def test_a_probe_of_small_splits_is_the_old_difference_of_passes():
    # The splits were whole: the fourth pass did not run.
    costs = _pass_costs(_passes(V, T, None), _plan(1024))
    assert costs is not None
    fixed, _, evaluation, _ = costs
    assert evaluation == pytest.approx(_evaluation(V))
    assert fixed == pytest.approx(FIXED + SETUP + _evaluation(T) - _evaluation(V))


def test_a_run_evaluating_fewer_examples_records_how_many(tmp_path):
    """The cut keeps at least one batch, and the shift's largest adaptation set of the test
    split; a plain run evaluates everything and records nothing."""
    shift = {"kind": "noise", "severity": 0.5, "adapt_examples": [8, 24]}
    spec = RunSpec.model_validate({**TINY_SPEC, "evaluation": {"shift": shift}})
    cut = train(spec, tmp_path / "cut", save_model=False, evaluated_at_most=10)
    val = round(120 * 0.25)
    test = cut.summary.evaluated["test"][1]
    assert cut.summary.evaluated == {"val": [16, val], "test": [24, test]}  # batch 16
    whole = train(spec, tmp_path / "whole", save_model=False)
    assert whole.summary.evaluated == {}
    assert rundir.read_summary(tmp_path / "whole").evaluated == {}
    assert rundir.read_summary(tmp_path / "cut").evaluated == cut.summary.evaluated
