"""The run spec: typed, validated once at load, never a raw dict afterwards.

Every field has a default that makes sense for a quick CPU run; unknown keys are an error.
Names that resolve to Keras objects (activations, optimizers, losses, initializers, datasets)
are checked here against the registries, so a typo fails before anything trains.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bnbench.config.diagnostics import DiagnosticsSpec
from bnbench.config.registries import (
    ACTIVATIONS,
    DATASET_NAMES,
    INITIALIZERS,
    LOSSES,
    METRICS,
    OPTIMIZERS,
    Backend,
    check_name,
)


class Strict(BaseModel):
    """Base for every spec section: unknown keys are rejected, assignments re-validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


NormKind = Literal["none", "batch", "layer", "group"]
Placement = Literal["before_activation", "after_activation"]


class NormSpec(Strict):
    """Which normalization follows a linear layer, and where it sits relative to the activation."""

    kind: NormKind = "batch"
    # Ioffe & Szegedy (2015) normalize x = Wu + b, i.e. the input of the nonlinearity.
    placement: Placement = "before_activation"
    momentum: float = Field(0.99, ge=0.0, lt=1.0)
    epsilon: float = Field(1e-3, gt=0.0)
    center: bool = True
    scale: bool = True
    groups: int = Field(4, ge=1, description="number of groups for group norm")
    fused: bool = Field(True, description="use the fused TensorFlow kernel for 4-D batch norm")


class _Block(Strict):
    activation: str | None = None
    norm: NormSpec | None = None
    initializer: str | None = None
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, ACTIVATIONS, "activation")

    @field_validator("initializer")
    @classmethod
    def _known_initializer(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, INITIALIZERS, "initializer")


class DenseBlock(_Block):
    """A fully connected layer, then normalization and activation (order set by the placement)."""

    type: Literal["dense"]
    units: int = Field(ge=1)


class Conv2DBlock(_Block):
    """A 2-D convolution, then normalization and activation, then optional pooling and dropout."""

    type: Literal["conv2d"]
    filters: int = Field(ge=1)
    kernel_size: int = Field(3, ge=1)
    strides: int = Field(1, ge=1)
    padding: Literal["same", "valid"] = "same"
    pool: Literal["max", "avg"] | None = None
    pool_size: int = Field(2, ge=1)


class FlattenBlock(Strict):
    """Reshape a feature map into a vector."""

    type: Literal["flatten"]


class GlobalAvgPoolBlock(Strict):
    """Average each channel over its spatial positions."""

    type: Literal["global_avg_pool"]


Block = Annotated[
    DenseBlock | Conv2DBlock | FlattenBlock | GlobalAvgPoolBlock, Field(discriminator="type")
]


class HeadSpec(Strict):
    """The output layer; units and activation are inferred from the dataset when omitted."""

    units: int | None = Field(None, ge=1)
    activation: str | None = None

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, ACTIVATIONS, "activation")


class ModelSpec(Strict):
    """A Sequential model: hidden blocks, then a dense head."""

    input_shape: list[int] | None = None
    activation: str = "relu"
    initializer: str = "glorot_uniform"
    norm: NormSpec = NormSpec()
    blocks: list[Block] = Field(min_length=1)
    head: HeadSpec = HeadSpec()

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: str) -> str:
        return check_name(value, ACTIVATIONS, "activation")

    @field_validator("initializer")
    @classmethod
    def _known_initializer(cls, value: str) -> str:
        return check_name(value, INITIALIZERS, "initializer")

    @field_validator("input_shape")
    @classmethod
    def _positive_dims(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(d < 1 for d in value)):
            raise ValueError(f"every dimension must be a positive integer, got {value}")
        return value


class DatasetSpec(Strict):
    """Where the examples come from and how they are prepared."""

    name: str
    # A fraction of the training examples held out (the last ones, after the subset), or "test"
    # to evaluate on the test split during training (as Ioffe & Szegedy plot test accuracy).
    validation_split: float | Literal["test"] = 0.1
    subset: int | None = Field(None, ge=1, description="keep only the first N training examples")
    normalize: Literal["none", "scale", "standardize"] = "scale"
    flatten: bool = False
    path: str | None = None
    num_samples: int | None = Field(None, ge=10, description="size of a synthetic set")

    @field_validator("name")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        return check_name(value, DATASET_NAMES, "dataset")

    @field_validator("validation_split")
    @classmethod
    def _fraction(cls, value: float | str) -> float | str:
        if isinstance(value, float) and not 0.0 < value < 1.0:
            raise ValueError(f"must be a fraction in (0, 1) or 'test', got {value}")
        return value


class ScheduleSpec(Strict):
    """Learning-rate schedule over training steps."""

    kind: Literal["constant", "step", "cosine"] = "constant"
    decay_rate: float = Field(0.1, gt=0.0, le=1.0, description="step decay: factor per drop")
    decay_every: int | None = Field(None, ge=1, description="step decay: steps between drops")
    alpha: float = Field(0.0, ge=0.0, le=1.0, description="cosine: final fraction of the rate")


class TrainingSpec(Strict):
    """How to fit: optimizer, length (epochs or steps), evaluation cadence, target."""

    optimizer: str = "sgd"
    learning_rate: float = Field(0.01, gt=0.0)
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    nesterov: bool = False
    schedule: ScheduleSpec = ScheduleSpec()
    batch_size: int = Field(32, ge=1)
    epochs: float | None = Field(None, gt=0.0)
    steps: int | None = Field(None, ge=1)
    eval_every: int | None = Field(None, ge=1, description="steps between evaluations")
    loss: str | None = None
    metrics: list[str] | None = None
    target_metric: str | None = None
    target_value: float | None = None
    deterministic: bool = False

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, value: str) -> str:
        return check_name(value, OPTIMIZERS, "optimizer")

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, LOSSES, "loss")

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [check_name(m, METRICS, "metric") for m in value]

    @model_validator(mode="after")
    def _length_and_target(self) -> TrainingSpec:
        if self.epochs is not None and self.steps is not None:
            raise ValueError(
                f"give the training length as epochs or steps, not both "
                f"(got epochs={self.epochs}, steps={self.steps})"
            )
        if (self.target_metric is None) != (self.target_value is None):
            raise ValueError("target_metric and target_value go together: give both or neither")
        if self.schedule.kind == "step" and self.schedule.decay_every is None:
            raise ValueError("schedule.kind 'step' needs schedule.decay_every (in steps)")
        return self


class RunSpec(Strict):
    """One training run, as written in YAML."""

    name: str = Field("run", min_length=1)
    seed: int = Field(0, ge=0)
    backend: Backend = "auto"
    dataset: DatasetSpec
    model: ModelSpec
    training: TrainingSpec = TrainingSpec()
    diagnostics: DiagnosticsSpec = DiagnosticsSpec()

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if "/" in value or "\\" in value or value.startswith("."):
            raise ValueError(f"must not contain path separators or start with '.', got {value!r}")
        return value
