"""Seed statistics of an ablation: means over seeds and paired comparisons with a reference arm.

Arms of an ablation share their seeds (same initialisation stream, same batch order), so an arm
is compared with the reference seed by seed: the paired t-test removes the seed-to-seed spread
that both arms share, which an unpaired test would count as noise.

Values that are undefined (no data, one sample for a spread, zero variance for a test) are None
rather than NaN, so that every writer turns them into an empty cell.
"""

from __future__ import annotations

import json
from typing import Any

from bnbench.analysis.inference import CONFIDENCE
from bnbench.analysis.multiplicity import CORRECTIONS, Correction, adjust
from bnbench.analysis.paired import (
    TimeToTarget,
    finite,
    mean_std,
    paired_difference,
    paired_speedup,
)
from bnbench.results.rows import Selection, validation_score

STATUSES = ("completed", "diverged", "failed", "incomplete")
SUMMARY_STATS = (
    "n",
    *STATUSES,
    "score",
    "final_test_mean",
    "final_test_std",
    "final_test_n",
    "final_val_mean",
    "best_val_mean",
    "best_cell",
    "steps",
    "examples",
    "steps_to_target_mean",
    "steps_to_target_std",
    "steps_to_target_n",
    "steps_to_target_censored",
    "steps_to_target_reached_mean",
    "reached",
    "step_time_ms_mean",
    "reference",
    "n_seeds",
    "n_pairs",
    "diff_mean",
    "diff_ci_low",
    "diff_ci_high",
    "p_value",
    "p_adjusted",
    "p_correction",
    "diff_kind",
    "speedup",
    "speedup_bound",
    "speedup_pairs",
)
_COMPARISON = SUMMARY_STATS[SUMMARY_STATS.index("n_seeds") :]
# The paired p-values of one report are a family: adjusted together, Holm by default.
CORRECTION: Correction = "holm"
# Marks a difference and p-value computed from fewer pairs than the cell has seeds.
FEWER_PAIRS = "†"
# What each summary statistic means; written beside the tables.
DEFINITIONS = {
    "means": "over completed runs only (a diverged, failed or unfinished run has no final "
    "value); (n=k/m) beside a mean says it averages k of the cell's m runs; std with ddof=1, "
    "empty below two values",
    "best cell": "each arm's grid cell with the best mean validation score (final_val_mean by "
    "default) over completed runs, marked ★ and best_cell; chosen on validation, never on the "
    "test score it is then read for",
    "budget": "steps = total_steps of a run, examples = total_steps × batch_size; a range "
    "min–max when the runs of a cell differ; cells of a batch-size grid get unequal budgets",
    "reached": "completed runs that reached the target, out of n (all runs of the cell)",
    "steps to target": "mean over the steps_to_target_n completed runs with a target; a run "
    "that never reached it counts at its last step (total_steps), so with censored runs "
    "(steps_to_target_censored > 0) the mean is a lower bound, shown ≥, without a std; "
    "steps_to_target_reached_mean averages only the runs that reached it",
    "difference": f"arm − reference over paired seeds, mean and {CONFIDENCE:.0%} interval: the t "
    "interval for continuous differences (diff_kind continuous), the exact sign-flip "
    "permutation interval widened by half the grid step for tied ones (diff_kind grid: e.g. "
    "every seed agreeing, never a zero-width interval); empty below two pairs or when unbounded",
    "p_value": "two-sided, by the same test (scipy.stats.ttest_rel's for continuous differences, "
    "the exact sign-flip permutation test for tied ones); empty below two pairs",
    "p_adjusted": f"p_value adjusted over every paired comparison of the report "
    f"({CORRECTIONS[CORRECTION]}), named in p_correction: read this one when scanning cells",
    FEWER_PAIRS: "Δ and p from fewer pairs than seeds (n_pairs < n_seeds): seeds whose run "
    "diverged, failed or is unfinished in either arm have no pair",
    "speedup": "geometric mean over paired seeds of reference steps / arm steps to the target, "
    "as the claims report it (above 1: "
    "the arm is faster); a run that never reached the target is censored at its last step, "
    "its time at least that: reference censored -> the pair's ratio is a lower bound (≥), arm "
    "censored -> an upper bound (≤), both censored -> no pair; the mean is exact when every "
    "pair is, ≥ (speedup_bound lower) or ≤ (upper) when some pairs are bounds of that one "
    "kind, and blank when both kinds occur",
}


def summarize(
    runs: list[dict[str, Any]],
    grid_keys: tuple[str, ...],
    reference: str,
    metric: str | None,
    *,
    by: Selection = "final",
) -> list[dict[str, Any]]:
    """One summary row per arm and grid cell, in the order the runs come in.

    Means and standard deviations are over completed runs only: a diverged, failed or unfinished
    run is counted in its status column but has no final value to average; `final_test_n` says
    how many values the mean has. "reached" counts the completed runs that reached the target
    (None when no run in the cell had a target); it reads as k out of `n`, all runs of the
    cell. Each arm is compared with the `reference` arm in the same grid cell over the seeds
    completed in both; the reference's own comparison columns are None. `best_cell` marks each
    arm's cell with the best mean validation score. DEFINITIONS says what every column means.

    Args:
        runs: runs.csv rows with `arm`, `seed`, `status`, `cell`, the `grid.<key>` columns and
            the final/best/target/budget columns, sorted by arm, cell and seed.
        grid_keys: Dotted keys of the grid.
        reference: The reference arm's name.
        metric: The metric name; None scores runs by their final test loss.
        by: Which validation score picks the best cell: "final" or "best".

    Returns:
        Rows keyed by `arm`, `cell`, `grid.<key>` and SUMMARY_STATS.

    Raises:
        SpecError: `by` is unknown.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        cell = json.dumps([run[f"grid.{key}"] for key in grid_keys], sort_keys=True, default=str)
        groups.setdefault((run["arm"], cell), []).append(run)
    rows = []
    for (arm, cell), members in groups.items():
        done = _completed(members)
        row: dict[str, Any] = {"arm": arm, "cell": members[0]["cell"]}
        row.update({f"grid.{key}": members[0][f"grid.{key}"] for key in grid_keys})
        row["n"] = len(members)
        row.update({status: sum(r["status"] == status for r in members) for status in STATUSES})
        row.update(_scores(done, metric))
        row.update(_budget(members))
        row.update(_time_to_target(members, done))
        row["step_time_ms_mean"] = mean_std(r["step_time_ms"] for r in done)[0]
        row["reference"] = reference
        row.update(dict.fromkeys(_COMPARISON))
        if arm != reference:
            row.update(_compare(members, groups.get((reference, cell), []), metric))
        rows.append(row)
    _mark_best_cells(rows, metric, by)
    _adjust_p_values(rows)
    return rows


def _adjust_p_values(rows: list[dict[str, Any]]) -> None:
    """Set `p_adjusted` over the report's paired p-values (one family) and name the method."""
    for row, value in zip(rows, adjust([row["p_value"] for row in rows], CORRECTION), strict=True):
        row["p_adjusted"] = value
        row["p_correction"] = CORRECTION if value is not None else None


def _completed(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if r["status"] == "completed"]


def _test_column(metric: str | None) -> str:
    return "final_test_metric" if metric else "final_test_loss"


def _scores(done: list[dict[str, Any]], metric: str | None) -> dict[str, Any]:
    """Mean test and validation scores of the completed runs, and how many test values."""
    kind = "metric" if metric else "loss"
    test = finite(r[_test_column(metric)] for r in done)
    mean, std = mean_std(test)
    return {
        "score": f"test_{metric or 'loss'}",
        "final_test_mean": mean,
        "final_test_std": std,
        "final_test_n": len(test),
        "final_val_mean": mean_std(r[f"final_val_{kind}"] for r in done)[0],
        "best_val_mean": mean_std(r[f"best_val_{kind}"] for r in done)[0],
    }


def _budget(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Steps and examples (steps × batch size) of the runs: one value, or a "min–max" range."""
    steps = finite(r["total_steps"] for r in runs)
    examples = [
        v[0] * v[1]
        for v in (finite([r["total_steps"], r["batch_size"]]) for r in runs)
        if len(v) == 2
    ]
    return {"steps": _span(steps), "examples": _span(examples)}


def _span(values: list[float]) -> int | float | str | None:
    if not values:
        return None
    low, high = min(values), max(values)
    if low == high:
        return int(low) if low.is_integer() else low
    return f"{_number(low)}–{_number(high)}"


def _number(value: float) -> str:
    return f"{value:.0f}" if value.is_integer() else f"{value:g}"


def _time_to_target(members: list[dict[str, Any]], done: list[dict[str, Any]]) -> dict[str, Any]:
    """Steps to target of the completed runs, those that never reached it censored."""
    if not any(r["target_metric"] for r in members):
        keys = ("mean", "std", "n", "censored", "reached_mean")
        return {**{f"steps_to_target_{k}": None for k in keys}, "reached": None}
    times = [_time(r) for r in done]
    reached = [t.steps for t in times if t.steps is not None]
    censored = sum(t.censored and t.time is not None for t in times)
    counted = finite(t.time for t in times)
    mean, std = mean_std(counted)
    return {
        "steps_to_target_mean": mean,
        # The spread of lower bounds says nothing about the spread of the times.
        "steps_to_target_std": None if censored else std,
        "steps_to_target_n": len(counted),
        "steps_to_target_censored": censored,
        "steps_to_target_reached_mean": mean_std(reached)[0],
        "reached": len(reached),
    }


def _time(run: dict[str, Any]) -> TimeToTarget:
    steps, last = finite([run["steps_to_target"]]), finite([run["total_steps"]])
    return TimeToTarget(steps[0] if steps else None, last[0] if last else None)


def _compare(
    members: list[dict[str, Any]], reference: list[dict[str, Any]], metric: str | None
) -> dict[str, Any]:
    done, ref, score = _completed(members), _completed(reference), _test_column(metric)
    paired = paired_difference(_by_seed(done, score), _by_seed(ref, score))
    speedup = paired_speedup(_times(done), _times(ref))
    seeds = {r["seed"] for r in [*members, *reference] if r["seed"] is not None}
    return {
        "n_seeds": len(seeds),
        "n_pairs": paired.n_pairs,
        "diff_mean": paired.mean,
        "diff_ci_low": paired.ci_low,
        "diff_ci_high": paired.ci_high,
        "p_value": paired.p_value,
        "diff_kind": paired.kind or None,
        "speedup": speedup.value,
        "speedup_bound": speedup.bound,
        "speedup_pairs": speedup.pairs,
    }


def _by_seed(runs: list[dict[str, Any]], column: str) -> dict[int, Any]:
    return {r["seed"]: r[column] for r in runs if r["seed"] is not None}


def _times(runs: list[dict[str, Any]]) -> dict[int, TimeToTarget]:
    """Seed -> time to target of the runs that had a target."""
    return {r["seed"]: _time(r) for r in runs if r["seed"] is not None and r["target_metric"]}


def _mark_best_cells(rows: list[dict[str, Any]], metric: str | None, by: Selection) -> None:
    """Set `best_cell` on each arm's row with the best mean validation score (first on ties)."""
    _, _, higher = validation_score(metric, by)
    column = f"{by}_val_mean"
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        row["best_cell"] = False
        value, current = row[column], best.get(row["arm"])
        if value is None:
            continue
        if current is None or (value > current[column] if higher else value < current[column]):
            best[row["arm"]] = row
    for row in best.values():
        row["best_cell"] = True
