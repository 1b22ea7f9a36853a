"""Seed statistics of an ablation: means over seeds and paired comparisons with a reference arm.

Arms of an ablation share their seeds (same initialisation stream, same batch order), so an arm
is compared with the reference seed by seed: the paired t-test removes the seed-to-seed spread
that both arms share, which an unpaired test would count as noise.

Values that are undefined (no data, one sample for a spread, zero variance for a test) are None
rather than NaN, so that every writer turns them into an empty cell.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
STATUSES = ("completed", "diverged", "failed", "incomplete")
SUMMARY_STATS = (
    "n",
    *STATUSES,
    "score",
    "final_test_mean",
    "final_test_std",
    "best_val_mean",
    "steps_to_target_mean",
    "steps_to_target_std",
    "reached",
    "step_time_ms_mean",
    "reference",
    "n_pairs",
    "diff_mean",
    "diff_ci_low",
    "diff_ci_high",
    "p_value",
    "speedup",
    "speedup_pairs",
)
_COMPARISON = SUMMARY_STATS[SUMMARY_STATS.index("n_pairs") :]
# What each summary statistic means; written beside the tables.
DEFINITIONS = {
    "means": "over completed runs; std with ddof=1, empty below two values",
    "reached": "completed runs that reached the target, out of n (all runs of the cell)",
    "difference": f"arm − reference over paired seeds, mean and {CONFIDENCE:.0%} t interval",
    "p_value": "two-sided scipy.stats.ttest_rel; empty, like the interval, below two pairs or "
    "at zero variance",
    "speedup": "mean over seeds where both arms reached the target of reference steps / arm "
    "steps (above 1: the arm is faster)",
}


@dataclass(frozen=True)
class Paired:
    """Paired difference arm − reference over the seeds both have a finite value for.

    Attributes:
        n_pairs: Number of seeds in both arms with a finite value.
        mean: Mean of the per-seed differences; None without pairs.
        ci_low: Lower end of the 95% t-interval of the mean difference; None when p_value is.
        ci_high: Upper end of that interval.
        p_value: Two-sided p-value of the paired t-test (scipy.stats.ttest_rel); None with fewer
            than two pairs or when all differences are equal (zero variance: no test exists).
    """

    n_pairs: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None


def finite(values: Iterable[object]) -> list[float]:
    """The values that are finite numbers (not booleans), as floats; anything else is skipped."""
    numbers = (v for v in values if isinstance(v, Real) and not isinstance(v, bool))
    return [float(v) for v in numbers if math.isfinite(float(v))]


def mean_std(values: Iterable[object]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1) of the finite values.

    Returns:
        (mean, std): mean is None without finite values, std is None with fewer than two.
    """
    data = finite(values)
    if not data:
        return None, None
    std = float(np.std(data, ddof=1)) if len(data) > 1 else None
    return float(np.mean(data)), std


def paired_difference(arm: Mapping[int, Any], reference: Mapping[int, Any]) -> Paired:
    """Compare `arm` with `reference` seed by seed.

    Args:
        arm: Seed -> value of the arm (None or non-finite for runs without a value).
        reference: Seed -> value of the reference arm.

    Returns:
        The paired difference, its 95% confidence interval and the paired t-test p-value.
    """
    pairs = _pairs(arm, reference)
    if not pairs:
        return Paired(0, None, None, None, None)
    a, b = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    mean = float(np.mean(a - b))
    if len(pairs) < 2 or _constant_difference(a, b):
        return Paired(len(pairs), mean, None, None, None)
    test = stats.ttest_rel(a, b)
    low, high = test.confidence_interval(CONFIDENCE)
    p_value, low, high = _finite_or_none(test.pvalue, low, high)
    return Paired(len(pairs), mean, low, high, p_value)


def paired_speedup(
    arm_steps: Mapping[int, Any], reference_steps: Mapping[int, Any]
) -> tuple[float | None, int]:
    """Mean over seeds of reference steps / arm steps to the target.

    The mean of per-seed ratios (not the ratio of means) keeps the pairing: each seed's ratio
    compares two runs that saw the same initialisation and batches. Only seeds where both arms
    reached the target (a finite, positive step count) count. Above 1, the arm is faster.

    Returns:
        (speedup, number of seeds it averages); speedup is None without such seeds.
    """
    ratios = [ref / steps for steps, ref in _pairs(arm_steps, reference_steps) if steps > 0]
    return (float(np.mean(ratios)) if ratios else None), len(ratios)


def _pairs(arm: Mapping[int, Any], reference: Mapping[int, Any]) -> list[tuple[float, float]]:
    """(arm, reference) values of the seeds where both are finite, in seed order."""
    pairs = []
    for seed in sorted(arm.keys() & reference.keys()):
        values = finite([arm[seed], reference[seed]])
        if len(values) == 2:
            pairs.append((values[0], values[1]))
    return pairs


def _finite_or_none(*values: Any) -> list[float | None]:
    return [float(v) if math.isfinite(float(v)) else None for v in values]


def _constant_difference(a: np.ndarray, b: np.ndarray) -> bool:
    # a - b carries a rounding error up to eps * max(|a|, |b|); differences that agree within it
    # are equal, and a t statistic computed from them would be noise over noise.
    spread = float(np.ptp(a - b))
    scale = float(np.max(np.abs(np.concatenate([a, b])))) if a.size else 0.0
    return bool(spread <= 8 * np.finfo(float).eps * max(scale, np.finfo(float).tiny))


def summarize(
    runs: list[dict[str, Any]], grid_keys: tuple[str, ...], reference: str, metric: str | None
) -> list[dict[str, Any]]:
    """One summary row per arm and grid cell, in the order the runs come in.

    Means and standard deviations are over completed runs only: a diverged, failed or unfinished
    run is counted in its status column but has no final test value to average. "reached" counts
    the completed runs that reached the target (None when no run in the cell had a target); it
    reads as k out of `n`, all runs of the cell. Each arm is compared with the `reference` arm in
    the same grid cell over the seeds completed in both; the reference's own comparison columns
    are None.

    Args:
        runs: runs.csv rows with `arm`, `seed`, `status`, `cell`, the `grid.<key>` columns, the
            final/best/target columns and `best_val_loss`, sorted by arm, cell and seed.
        grid_keys: Dotted keys of the grid.
        reference: The reference arm's name.
        metric: The metric name; None scores runs by their final test loss.

    Returns:
        Rows keyed by `arm`, `cell`, `grid.<key>` and SUMMARY_STATS.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        cell = json.dumps([run[f"grid.{key}"] for key in grid_keys], sort_keys=True, default=str)
        groups.setdefault((run["arm"], cell), []).append(run)
    score = "final_test_metric" if metric else "final_test_loss"
    best = "best_val_metric" if metric else "best_val_loss"
    rows = []
    for (arm, cell), members in groups.items():
        done = [r for r in members if r["status"] == "completed"]
        row: dict[str, Any] = {"arm": arm, "cell": members[0]["cell"]}
        row.update({f"grid.{key}": members[0][f"grid.{key}"] for key in grid_keys})
        row["n"] = len(members)
        row.update({status: sum(r["status"] == status for r in members) for status in STATUSES})
        row["score"] = f"test_{metric or 'loss'}"
        row["final_test_mean"], row["final_test_std"] = mean_std(r[score] for r in done)
        row["best_val_mean"] = mean_std(r[best] for r in done)[0]
        steps = finite(r["steps_to_target"] for r in done)
        row["steps_to_target_mean"], row["steps_to_target_std"] = mean_std(steps)
        row["reached"] = len(steps) if any(r["target_metric"] for r in members) else None
        row["step_time_ms_mean"] = mean_std(r["step_time_ms"] for r in done)[0]
        row["reference"] = reference
        row.update(dict.fromkeys(_COMPARISON))
        if arm != reference:
            ref = [r for r in groups.get((reference, cell), []) if r["status"] == "completed"]
            row.update(_compare(done, ref, score))
        rows.append(row)
    return rows


def _compare(
    done: list[dict[str, Any]], reference: list[dict[str, Any]], score: str
) -> dict[str, Any]:
    paired = paired_difference(_by_seed(done, score), _by_seed(reference, score))
    speedup, speedup_pairs = paired_speedup(
        _by_seed(done, "steps_to_target"), _by_seed(reference, "steps_to_target")
    )
    return {
        "n_pairs": paired.n_pairs,
        "diff_mean": paired.mean,
        "diff_ci_low": paired.ci_low,
        "diff_ci_high": paired.ci_high,
        "p_value": paired.p_value,
        "speedup": speedup,
        "speedup_pairs": speedup_pairs,
    }


def _by_seed(runs: list[dict[str, Any]], column: str) -> dict[int, Any]:
    return {r["seed"]: r[column] for r in runs if r["seed"] is not None}
