"""The `diagnostics:` section of a run spec: which BN diagnostics to record, and how often.

The recorder that measures them lives in `bnbench.train.diagnostics`; this is only its schema,
so validating a spec never imports the training code.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ActivationPercentilesSpec(BaseModel):
    """Which pre-activations to summarise, how often, and with which percentiles."""

    model_config = ConfigDict(extra="forbid")

    # None = the last hidden block with an activation, the one Figure 1 of the paper shows.
    layers: list[str] | None = Field(default=None, min_length=1)
    every: int = Field(default=100, ge=1)
    percentiles: list[Annotated[float, Field(gt=0, lt=100)]] = Field(
        default_factory=lambda: [15.0, 50.0, 85.0], min_length=1
    )
    # "pooled": every unit of the layer together (the distribution a typical unit sees); an
    # index: that one unit (channel, for conv blocks), as the paper's Figure 1 shows one unit.
    units: Literal["pooled"] | Annotated[int, Field(ge=0)] = "pooled"

    @field_validator("layers", "percentiles")
    @classmethod
    def _unique(cls, value: list[Any] | None) -> list[Any] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"entries must be unique, got {value}")
        return value


class DiagnosticsSpec(BaseModel):
    """The ``diagnostics:`` section of a run spec; everything is off by default.

    Activation percentiles are taken every ``every`` steps, the rest at step 0 and every
    evaluation point. BN batch statistics and gradients are those of training mode; losses
    and gradients are of the data loss alone (no regularisation penalties).

    ``variance_shift`` is Li et al.'s (2019) probe: for every batch-norm layer, the variance of
    its input in training mode (dropout active, earlier BN layers on batch statistics) over
    its variance in inference mode, per unit on the whole probe batch, then the geometric
    mean over units. Above 1 means the layer's moving variance, gathered in training, is
    larger than what it normalizes at inference.
    """

    model_config = ConfigDict(extra="forbid")

    activation_percentiles: ActivationPercentilesSpec | None = None
    # Writes diagnostics/moving_statistics.csv; the key keeps its name, as run ids hash it.
    bn_statistics: bool = False
    train_inference_gap: bool = False
    gradient_norms: bool = False
    variance_shift: bool = False
    probe_size: int = Field(default=256, ge=1)

    @property
    def enabled(self) -> bool:
        """Whether any diagnostic is switched on."""
        return self.activation_percentiles is not None or any(
            (self.bn_statistics, self.train_inference_gap, self.gradient_norms,
             self.variance_shift)
        )  # fmt: skip
