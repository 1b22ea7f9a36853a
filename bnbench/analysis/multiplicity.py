"""Multiplicity: p-values adjusted over a family of tests (the findings of a run, the cells of a
summary table), so that "significant at 5%" holds for the family, not for each test alone.

Holm (1979) controls the family-wise error rate and is the default; Benjamini & Hochberg (1995)
control the false discovery rate (scipy.stats.false_discovery_control). Missing p-values (None)
stay missing and are not counted in the family.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import stats

from bnbench.analysis.inference import CONFIDENCE

Correction = Literal["holm", "bh"]
CORRECTIONS: dict[Correction, str] = {
    "holm": "Holm (family-wise error)",
    "bh": "Benjamini-Hochberg (false discovery rate)",
}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return []
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (p.size - np.arange(p.size)))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(stepped, 1.0)
    return [float(x) for x in adjusted]


def adjust(p_values: Sequence[float | None], correction: Correction = "holm") -> list[float | None]:
    """Adjusted p-values over the family of the non-missing ones, in the input order.

    Raises:
        ValueError: the correction is unknown or a p-value lies outside [0, 1].
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"correction {correction!r} is not one of {', '.join(CORRECTIONS)}")
    present = [(i, float(p)) for i, p in enumerate(p_values) if p is not None]
    if any(not 0.0 <= p <= 1.0 for _, p in present):
        raise ValueError(f"p-values must lie in [0, 1]; got {[p for _, p in present]}")
    raw = [p for _, p in present]
    if not raw:
        fixed: list[float] = []
    elif correction == "holm":
        fixed = holm(raw)
    else:
        fixed = [float(x) for x in stats.false_discovery_control(raw, method="bh")]
    out: list[float | None] = [None] * len(p_values)
    for (i, _), value in zip(present, fixed, strict=True):
        out[i] = value
    return out


def family_level(tests: int, level: float = CONFIDENCE) -> float:
    """The per-interval level whose intervals hold jointly at `level` (Bonferroni): an interval
    at this level excludes a value exactly when Holm's first, most stringent, step rejects it."""
    if tests < 1:
        raise ValueError(f"a family has at least one test; got {tests}")
    return 1 - (1 - level) / tests
