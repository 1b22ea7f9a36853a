"""Percentiles of a block's pre-activation over training (Ioffe & Szegedy 2015, Figure 1(b, c)).

Reference:
    Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing
    Internal Covariate Shift", ICML 2015.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from bnbench.config.diagnostics import ActivationPercentilesSpec, DiagnosticsSpec
from bnbench.results.diagnostics import ACTIVATION_PERCENTILES, percentile_columns
from bnbench.train.diagnostics.probe import Diagnostic, Probe, Weights

_ACTIVATION_LAYER = re.compile(r"^(block(\d+))_act$")


class ActivationPercentiles(Diagnostic):
    """Every `every` steps, percentiles of the chosen blocks' pre-activation in training mode
    (batch statistics, as during training), pooled over examples and units or of one unit.

    Raises:
        ValueError: an unknown block, or a unit the blocks do not have.
    """

    file = ACTIVATION_PERCENTILES

    def __init__(self, spec: DiagnosticsSpec, probe: Probe) -> None:
        super().__init__(spec, probe)
        assert spec.activation_percentiles is not None
        self.options = spec.activation_percentiles
        self.blocks = _chosen_blocks(probe.model, self.options)
        self.unit = _chosen_unit(probe.model, self.blocks, self.options)
        self.taps = [f"{block}_act" for block in self.blocks]

    @property
    def columns(self) -> tuple[str, ...]:
        return percentile_columns(self.options.percentiles)

    def steps(self, total_steps: int, eval_steps: Iterable[int]) -> set[int]:
        return set(range(0, total_steps + 1, self.options.every))

    def record(self, step: int, weights: Weights) -> list[list[Any]]:
        rows = []
        for block in self.blocks:
            values = weights.tapped[f"{block}_act"]
            # Pooled over examples and units (the distribution a "typical" unit sees), or over
            # the examples (and positions) of one unit.
            values = values.ravel() if isinstance(self.unit, str) else values[..., self.unit]
            summary = np.percentile(values, self.options.percentiles)
            rows.append([step, block, self.unit, *map(float, summary)])
        return rows


def _chosen_unit(
    model: Any, blocks: list[str], spec: ActivationPercentilesSpec | None
) -> str | int:
    """The unit whose percentiles are recorded ('pooled' for all), checked against the blocks."""
    if spec is None or spec.units == "pooled":
        return "pooled"
    for block in blocks:
        width = int(model.get_layer(f"{block}_act").input.shape[-1])
        if spec.units >= width:
            raise ValueError(
                f"activation_percentiles.units: {spec.units} is not a unit of {block}, which "
                f"has {width} (indices 0 to {width - 1})"
            )
    return spec.units


def _chosen_blocks(model: Any, spec: ActivationPercentilesSpec | None) -> list[str]:
    """Block names whose pre-activation to record, validated against the model."""
    if spec is None:
        return []
    matches = (_ACTIVATION_LAYER.match(layer.name) for layer in model.layers)
    available = [m.group(1) for m in sorted(filter(None, matches), key=lambda m: int(m.group(2)))]
    if not available:
        raise ValueError("activation_percentiles: the model has no 'block{i}_act' layer")
    if spec.layers is None:
        return available[-1:]
    unknown = [name for name in spec.layers if name not in available]
    if unknown:
        raise ValueError(
            f"activation_percentiles.layers: unknown block(s) {unknown}; "
            f"blocks with an activation: {', '.join(available)}"
        )
    return list(spec.layers)
