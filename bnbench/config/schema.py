"""The run spec: typed, validated once at load, never a raw dict afterwards.

Every field has a default that makes sense for a quick CPU run; unknown keys are an error.
Names that resolve to Keras objects (activations, optimizers, losses, initializers, datasets)
are checked here against the registries, so a typo fails before anything trains.
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Any, Literal

import numpy
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bnbench.config.diagnostics import DiagnosticsSpec
from bnbench.config.registries import (
    ACTIVATIONS,
    DATASET_NAMES,
    INITIALIZERS,
    LOSSES,
    METRICS,
    OPTIMIZERS,
    VARIANCE_SCALING,
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
    # Ghost batch norm (Hoffer et al. 2017): in training, normalize each sub-batch of this many
    # examples with its own statistics. Keras 3 dropped BatchNormalization's option of that name.
    virtual_batch_size: int | None = Field(
        None, ge=2, description="batch norm only: examples per ghost batch (must divide the batch)"
    )

    @field_validator("epsilon")
    @classmethod
    def _representable(cls, value: float) -> float:
        # The layers compute in float32: an epsilon that rounds to 0 there divides by zero.
        if float(numpy.float32(value)) == 0.0:
            raise ValueError(f"must be representable in float32 (at least ~1.4e-45), got {value}")
        return value

    @model_validator(mode="after")
    def _ghost_needs_batch(self) -> NormSpec:
        if self.virtual_batch_size is not None and self.kind != "batch":
            raise ValueError(
                f"virtual_batch_size ({self.virtual_batch_size}) applies to kind 'batch' only, "
                f"got kind {self.kind!r}"
            )
        return self


class RandomNormalInit(Strict):
    """Weights drawn from N(mean, stddev²); the plain name `random_normal` is N(0, 0.05²)."""

    kind: Literal["random_normal"]
    mean: float = 0.0
    stddev: float = Field(0.05, gt=0.0)


class RandomUniformInit(Strict):
    """Weights drawn uniformly from [minval, maxval); the plain name is [-0.05, 0.05)."""

    kind: Literal["random_uniform"]
    minval: float = -0.05
    # Validated even when left at its default, so that `{minval: 0.1}` alone is refused.
    maxval: float = Field(0.05, validate_default=True)

    @field_validator("maxval")
    @classmethod
    def _above_minval(cls, value: float, info: ValidationInfo) -> float:
        minval = info.data.get("minval")  # absent when minval itself failed validation
        if minval is not None and value <= minval:
            raise ValueError(f"must be above minval ({minval}), got {value}")
        return value


class ScaledInit(Strict):
    """A named variance-scaling initializer with its own scale: weights of variance scale/fan.

    The kind keeps its fan (fan_in, or fan_avg for glorot_*) and its distribution; only the
    scale changes. Left out, it is the kind's own (2 for he_*, 1 otherwise), so
    `{kind: he_normal}` is `he_normal`.
    """

    kind: Literal[
        "glorot_uniform",
        "glorot_normal",
        "he_uniform",
        "he_normal",
        "lecun_uniform",
        "lecun_normal",
    ]
    scale: float = Field(gt=0.0)

    @model_validator(mode="before")
    @classmethod
    def _kind_scale(cls, data: Any) -> Any:
        if isinstance(data, dict) and "scale" not in data and data.get("kind") in VARIANCE_SCALING:
            return {**data, "scale": VARIANCE_SCALING[data["kind"]][0]}
        return data


class VarianceScalingInit(Strict):
    """Keras' VarianceScaling, every choice open; the defaults are Keras' (LeCun's normal)."""

    kind: Literal["variance_scaling"]
    scale: float = Field(1.0, gt=0.0)
    mode: Literal["fan_in", "fan_out", "fan_avg"] = "fan_in"
    distribution: Literal["truncated_normal", "untruncated_normal", "uniform"] = "truncated_normal"


class ZerosInit(Strict):
    """All weights zero; it takes no arguments."""

    kind: Literal["zeros"]


InitializerArgs = (
    RandomNormalInit | RandomUniformInit | ScaledInit | VarianceScalingInit | ZerosInit
)


def _initializer_form(value: Any) -> str:
    return "name" if isinstance(value, str) else "args"


def _known_initializer(value: Any) -> Any:
    """Check a plain name, or the kind of the mapping form, against the registry first.

    Done before the union dispatches on `kind`, so a typo gets the registry's message (with a
    suggestion and the list) rather than pydantic's tag-mismatch error.
    """
    if isinstance(value, str):
        check_name(value, INITIALIZERS, "initializer")
    elif isinstance(value, dict):
        names = ", ".join(INITIALIZERS)
        if "kind" not in value:
            keys = ", ".join(map(str, value)) or "no keys"
            raise ValueError(f"the mapping form needs a kind (one of {names}); got {keys}")
        if not isinstance(value["kind"], str):
            raise ValueError(f"kind must be one of {names}, got {value['kind']!r}")
        check_name(value["kind"], INITIALIZERS, "initializer")
    elif not isinstance(value, BaseModel):
        raise ValueError(
            f"must be an initializer name or a mapping such as {{kind: random_normal, "
            f"stddev: 0.1}}, got {value!r}"
        )
    return value


# A weight initializer: a plain registry name, passed to Keras as it is (so its weights are
# exactly those of the name alone), or `{kind: ..., <arguments>}` when the arguments matter, as
# for the N(0, 0.1²) weights of configs/mlp_mnist.yaml. Arguments that do not belong to the kind
# are unknown keys. The name-or-mapping choice is made up front, so that an error reports on the
# form given rather than on both.
Initializer = Annotated[
    Annotated[str, Tag("name")]
    | Annotated[InitializerArgs, Field(discriminator="kind"), Tag("args")],
    Discriminator(_initializer_form),
    BeforeValidator(_known_initializer),
]


class _Block(Strict):
    activation: str | None = None
    norm: NormSpec | None = None
    initializer: Initializer | None = Field(None, description="default: model.initializer")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # The depth knob: the block stands for this many identical copies in a row (each its own
    # block{i} in the layer names), so a grid over `model.blocks.0.repeat` varies the depth.
    repeat: int = Field(1, ge=1, le=256, description="identical copies of this block in a row")

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, ACTIVATIONS, "activation")


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
    """The output layer; units and activation are inferred from the dataset when omitted, the
    initializer is the model's unless given."""

    units: int | None = Field(None, ge=1)
    activation: str | None = None
    initializer: Initializer | None = Field(None, description="default: model.initializer")

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, ACTIVATIONS, "activation")


class InputNormSpec(Strict):
    """Batch norm on the model's inputs: a layer `input_norm` before the first block.

    In training it standardizes each input feature (each channel of an image) with the batch's
    mean and variance, then scales and shifts it by a learned gamma and beta; in inference it
    uses the moving averages. It is `dataset.normalize: standardize` done by the network, with
    batch statistics, which is how batch norm acts on badly scaled inputs (claim input_scaling).
    """

    kind: Literal["batch"] = "batch"
    momentum: float = Field(0.99, ge=0.0, lt=1.0)
    epsilon: float = Field(1e-3, gt=0.0)
    center: bool = True
    scale: bool = True

    @field_validator("epsilon")
    @classmethod
    def _representable(cls, value: float) -> float:
        if float(numpy.float32(value)) == 0.0:  # as for NormSpec: the layer computes in float32
            raise ValueError(f"must be representable in float32 (at least ~1.4e-45), got {value}")
        return value


class ModelSpec(Strict):
    """A Sequential model: optional input batch norm, hidden blocks, then a dense head."""

    input_shape: list[int] | None = None
    activation: str = "relu"
    initializer: Initializer = "glorot_uniform"  # every block's and the head's, unless they say
    # None: the inputs reach the first block as the dataset prepared them.
    input_norm: InputNormSpec | None = None
    norm: NormSpec = NormSpec()
    blocks: list[Block] = Field(min_length=1)
    head: HeadSpec = HeadSpec()

    @field_validator("activation")
    @classmethod
    def _known_activation(cls, value: str) -> str:
        return check_name(value, ACTIVATIONS, "activation")

    @field_validator("input_shape")
    @classmethod
    def _positive_dims(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(d < 1 for d in value)):
            raise ValueError(f"every dimension must be a positive integer, got {value}")
        return value

    @model_validator(mode="after")
    def _groups_divide_channels(self) -> ModelSpec:
        # Checked here, not only when the layer is built, so that `plan` catches it for every
        # expanded run before an ablation trains anything.
        for index, block in enumerate(self.blocks):
            if not isinstance(block, DenseBlock | Conv2DBlock):
                continue
            norm = block.norm or self.norm
            width = block.units if isinstance(block, DenseBlock) else block.filters
            if norm.kind == "group" and width % norm.groups:
                raise ValueError(
                    f"blocks.{index}: group norm needs norm.groups to divide the {width} "
                    f"channels, got groups={norm.groups}"
                )
        return self


class DatasetSpec(Strict):
    """Where the examples come from and how they are prepared."""

    name: str
    # A fraction of the training examples held out (the last ones, after the subset), or "test"
    # to evaluate on the test split during training (as Ioffe & Szegedy plot test accuracy).
    validation_split: float | Literal["test"] = 0.1
    subset: int | None = Field(None, ge=1, description="keep only the first N training examples")
    # 'scale' divides by the range the data comes in: the registry's for a named dataset (255 for
    # the Keras image sets, 16 for digits), the dtype's for an .npz (uint8 -> 255), or `scale_by`.
    normalize: Literal["none", "scale", "standardize"] = "scale"
    scale_by: float | None = Field(
        None,
        gt=0.0,
        description="divisor for normalize: scale, overriding the dataset's known range "
        "(needed for an .npz of floats beyond [-1, 1] or of signed integers); "
        "ignored by the other normalize modes, so one spec can compare them",
    )
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
    # How learning_rate follows batch_size, so that a grid over batch sizes need not keep one
    # rate for all: "linear" is Goyal et al.'s (2017) rule, "sqrt" keeps the gradient noise
    # scale (Krizhevsky 2014; Hoffer et al. 2017). "none" uses learning_rate as given.
    lr_scaling: Literal["none", "linear", "sqrt"] = "none"
    reference_batch_size: int | None = Field(
        None, ge=1, description="the batch size at which learning_rate applies (with lr_scaling)"
    )
    epochs: float | None = Field(None, gt=0.0)
    steps: int | None = Field(None, ge=1)
    eval_every: int | None = Field(None, ge=1, description="steps between evaluations")
    loss: str | None = None
    metrics: list[str] | None = None
    target_metric: str | None = None
    target_value: float | None = None
    deterministic: bool = False
    # A run diverges when its loss turns non-finite, or when the mean training loss at an
    # evaluation point exceeds this multiple of the loss at step 0 (Keras clips cross-entropy,
    # so a blown-up classifier sits at a finite ~14.5 instead of NaN).
    divergence_factor: float = Field(3.0, gt=1.0)
    # Training steps per call into the backend (Keras' `steps_per_execution`). More than 1 cuts
    # the per-step Python overhead (about 1.7x faster steps for the digits MLP at 32) and leaves
    # every number unchanged except one: a loss that turns non-finite is seen only at the end
    # of its group, so `diverged_step` is then known to within this many steps.
    steps_per_execution: int = Field(1, ge=1, le=1000, strict=True)

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
        _check_target_range(self.target_metric, self.target_value)
        if self.schedule.kind == "step" and self.schedule.decay_every is None:
            raise ValueError("schedule.kind 'step' needs schedule.decay_every (in steps)")
        if self.lr_scaling != "none" and self.reference_batch_size is None:
            raise ValueError(
                f"lr_scaling {self.lr_scaling!r} needs reference_batch_size, the batch size at "
                "which learning_rate applies"
            )
        if self.lr_scaling == "none" and self.reference_batch_size is not None:
            raise ValueError(
                f"reference_batch_size ({self.reference_batch_size}) only applies with "
                "lr_scaling 'linear' or 'sqrt'; lr_scaling is 'none'"
            )
        return self

    @property
    def effective_learning_rate(self) -> float:
        """The rate the optimizer starts from: learning_rate scaled from reference_batch_size
        to batch_size.

        `linear`: learning_rate × batch_size / reference_batch_size; `sqrt`: × the square root
        of that ratio; `none`: learning_rate itself. A schedule decays from this rate.
        """
        if self.lr_scaling == "none" or self.reference_batch_size is None:
            return self.learning_rate
        ratio = self.batch_size / self.reference_batch_size
        return self.learning_rate * (ratio if self.lr_scaling == "linear" else math.sqrt(ratio))


class ShiftSpec(Strict):
    """A covariate shift of the test inputs, and BN statistics re-estimated on shifted examples.

    After training, the test split is evaluated once more with every input shifted:

    * `noise`: Gaussian noise of standard deviation `severity` added to every value, in the units
      of the inputs as the model sees them (after `dataset.normalize`), without clipping;
    * `contrast`: each example's values scaled by `severity` around that example's own mean
      (over all of its values): `mean + severity * (x - mean)`; 1 leaves them unchanged.

    The shifted split is scored (a) with the BN statistics of training (the moving averages),
    and (b) for each N of `adapt_examples`, with every BN layer's mean and variance re-estimated
    on N shifted test examples (Schneider et al. 2020). The N examples are the first N of one
    seeded permutation of the shifted test split, so the smaller sets lie inside the larger
    ones; the whole shifted split (those N examples included) is then scored, so that every N
    is scored on the same examples as (a). Noise and permutation are drawn from the run's seed.

    With `prior_strength` n, the source (moving) statistics act as a prior worth n examples:
    each layer normalizes with `(n * source + N * estimate) / (n + N)` (mean and variance
    alike), Schneider et al.'s N/(N + n) weighting. Null re-estimates purely from the N
    examples. The prior matters at small N: in a dense network the variance of one example is
    zero, so N = 1 without a prior divides by sqrt(epsilon) alone.
    """

    kind: Literal["noise", "contrast"]
    severity: float = Field(
        ge=0.0, description="noise: its standard deviation; contrast: the scale factor"
    )
    adapt_examples: list[int] = Field(
        [1, 8, 32, 256],
        description="increasing numbers of shifted test examples to re-estimate BN on",
    )
    prior_strength: int | None = Field(
        None, ge=1, description="examples' worth of the training statistics (null: none)"
    )

    @field_validator("adapt_examples")
    @classmethod
    def _increasing_counts(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("give at least one number of examples, e.g. [8, 32, 256]")
        if min(value) < 1:
            raise ValueError(f"every number of examples must be at least 1, got {value}")
        if any(a >= b for a, b in itertools.pairwise(value)):
            raise ValueError(f"must be strictly increasing, got {value}")
        return value


class EvaluationSpec(Strict):
    """How the model is evaluated on the held-out and test splits.

    Inference mode normalizes with BN's moving statistics, which lag the weights (with momentum
    0.99, for hundreds of steps). `bn_statistics: recalibrated` re-estimates every BN layer's
    population mean and variance on `recalibration_batches` training batches before each
    evaluation (PreciseBN, Wu & Johnson 2021), in a copy of the state: training is unchanged.
    `shift` adds a final evaluation on shifted test inputs (`ShiftSpec`); off by default.
    """

    bn_statistics: Literal["moving", "recalibrated"] = "moving"
    recalibration_batches: int = Field(20, ge=1)
    # Also evaluate the held-out split in training mode (BN normalizing each batch of the run's
    # own batch size with its own statistics), so curves can show the train/inference gap.
    train_mode_metrics: bool = True
    shift: ShiftSpec | None = None


def _check_target_range(metric: str | None, value: float | None) -> None:
    """A target the metric can never take is a typo (accuracy 7 for 0.7, say)."""
    if metric is None or value is None:
        return
    if metric.endswith("accuracy") and not 0.0 <= value <= 1.0:
        raise ValueError(f"target_value: accuracy lies in [0, 1], got {value} for {metric}")
    if metric.endswith(("loss", "mae", "mse")) and value < 0.0:
        raise ValueError(f"target_value: {metric} is never negative, got {value}")


class RunSpec(Strict):
    """One training run, as written in YAML."""

    name: str = Field("run", min_length=1)
    # NumPy's generators (the batch order) take seeds below 2**32, as do the backends' seeds.
    seed: int = Field(0, ge=0, le=2**32 - 1)
    backend: Backend = "auto"
    dataset: DatasetSpec
    model: ModelSpec
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    diagnostics: DiagnosticsSpec = DiagnosticsSpec()

    @model_validator(mode="after")
    def _ghost_batches_fit(self) -> RunSpec:
        blocks = [b for b in self.model.blocks if isinstance(b, DenseBlock | Conv2DBlock)]
        norms = [self.model.norm, *(block.norm for block in blocks if block.norm)]
        batch = self.training.batch_size
        for norm in norms:
            size = norm.virtual_batch_size
            if size is not None and batch % size:
                raise ValueError(
                    f"norm.virtual_batch_size {size} must divide training.batch_size ({batch}): "
                    "every ghost batch is full"
                )
        return self

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if "/" in value or "\\" in value or value.startswith("."):
            raise ValueError(f"must not contain path separators or start with '.', got {value!r}")
        return value
