"""One setup path for `bnbench validate` and `bnbench train`: a spec in, everything a run needs out.

`prepare` makes every check training makes (data, blocks fitting the data, batch size, target
metric, diagnostics block names), so `validate` accepts exactly what `train` accepts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from bnbench.config.backend_policy import choose_backend
from bnbench.config.registries import LOSSES, METRICS, OPTIMIZERS
from bnbench.config.schema import RunSpec, TrainingSpec
from bnbench.data.datasets import Dataset
from bnbench.errors import SpecError
from bnbench.train.schedule import (
    Schedule,
    batch_order,
    check_batch_size,
    check_length,
    check_memory,
    check_target,
    loss_and_metrics,
)
from bnbench.train.shift import check_shift

# What a run does before its first step, in this order. A `PhaseHook` is called with each as it
# begins: "imports" (Keras and the backend), "data" (reading and checking the data), "build"
# (seeding, building and compiling the model, the diagnostics' probe), "compile" (from the end
# of `prepare` to the first step: the first evaluation and the first step's compilation, which
# Keras does lazily). The first step's progress report ends the last phase.
Phase = Literal["imports", "data", "build", "compile"]
PhaseHook = Callable[[Phase], None]
PHASES: dict[Phase, str] = {
    "imports": "importing Keras",
    "data": "loading data",
    "build": "building the model",
    "compile": "compiling",
}


@dataclass(frozen=True)
class Prepared:
    """A run ready to train: seeded, built and compiled; nothing written yet.

    Attributes:
        spec: The validated run spec.
        backend: The Keras backend the run uses (the spec's, or the `auto` policy's choice).
        data: The prepared arrays.
        schedule: Steps, evaluation points and epochs.
        model: The compiled Keras model, with the seed's initial weights.
        loss_name: The loss, with the task's default filled in.
        metric_names: The metrics, with the task's default filled in.
        order: The training examples of every step, in order (`batch_order`).
        recorder: The diagnostics recorder, or None when every diagnostic is off.
        timings: Seconds spent importing Keras and the backend, loading the data, and building
            the model (compilation proper happens at the first step).
        evaluated: Split -> [examples evaluated, examples in the split], for the splits that
            `prepare(evaluated_at_most=...)` cut (the runtime probe's runs); empty otherwise.
    """

    spec: RunSpec
    backend: str
    data: Dataset
    schedule: Schedule
    model: Any
    loss_name: str
    metric_names: list[str]
    order: np.ndarray
    recorder: Any
    timings: dict[str, float] = field(default_factory=dict)
    evaluated: dict[str, list[int]] = field(default_factory=dict)


def prepare(
    spec: RunSpec,
    *,
    download: bool = True,
    phase: PhaseHook | None = None,
    evaluated_at_most: int | None = None,
) -> Prepared:
    """Activate the backend, load the data, seed, build and compile the model of `spec`.

    Args:
        spec: the run spec.
        download: let Keras download a dataset missing from its cache (`validate` does not).
        phase: called as each phase begins (`Phase`); the last, "compile", as this returns.
        evaluated_at_most: evaluate on only the first this many examples of the validation and
            of the test split (at least one batch, and the shift's largest adaptation set):
            the runtime probe's shortcut (`bnbench.ablate.probe`), which scales what it times
            to the whole splits; never a run whose numbers are reported. Recorded in
            `Prepared.evaluated`.

    Raises:
        SpecError: the spec cannot be trained (backend missing, data missing, blocks not fitting
            the data, a batch larger than the training set, a target that is not recorded,
            diagnostics naming blocks the model does not have).
    """
    from bnbench.train.backend import activate, set_random_seed

    announce = phase or _silent
    announce("imports")
    clock = _Clock()
    backend = choose_backend(spec)
    activate(backend)
    import keras

    from bnbench.data.datasets import load_dataset
    from bnbench.model.build import build_model

    clock.lap("imports")
    announce("data")
    data = load_dataset(spec.dataset, download=download)
    loss_name, metric_names = loss_and_metrics(spec.training, data.task)
    check_target(spec.training, metric_names)
    check_shift(spec.evaluation.shift, len(data.x_test))
    evaluated: dict[str, list[int]] = {}
    if evaluated_at_most is not None:
        data, evaluated = _evaluating_fewer(spec, data, evaluated_at_most)
    clock.lap("data")
    announce("build")
    keras.utils.clear_session()
    set_random_seed(spec.seed)
    if spec.training.deterministic and backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    schedule = check_against_data(spec, data)
    model = build_model(spec.model, data.input_shape, data.output_units, data.task)
    model.compile(
        optimizer=make_optimizer(spec.training, schedule.total_steps),
        loss=LOSSES[loss_name],
        metrics=[METRICS[m] for m in metric_names],
        steps_per_execution=spec.training.steps_per_execution,
    )
    order = batch_order(
        len(data.x_train), schedule.total_steps, spec.training.batch_size, spec.seed
    )
    recorder = _recorder(spec, model, data, order, loss_name, metric_names)
    clock.lap("build")
    announce("compile")
    return Prepared(spec, backend, data, schedule, model, loss_name, metric_names, order,
                    recorder, clock.laps, evaluated)  # fmt: skip


def _evaluating_fewer(
    spec: RunSpec, data: Dataset, at_most: int
) -> tuple[Dataset, dict[str, list[int]]]:
    """`data` with its validation and test splits cut to their first `at_most` examples (at
    least one batch; the test split at least the shift's largest adaptation set), and what was
    cut: split -> [kept, of]."""
    keep = max(at_most, spec.training.batch_size)
    shift = spec.evaluation.shift
    keep_test = max(keep, max(shift.adapt_examples) if shift is not None else 0)
    cuts = {"val": min(keep, len(data.x_val)), "test": min(keep_test, len(data.x_test))}
    found = {"val": len(data.x_val), "test": len(data.x_test)}
    evaluated = {name: [cuts[name], found[name]] for name in cuts if cuts[name] < found[name]}
    if not evaluated:
        return data, {}
    cut = replace(
        data,
        x_val=data.x_val[: cuts["val"]],
        y_val=data.y_val[: cuts["val"]],
        x_test=data.x_test[: cuts["test"]],
        y_test=data.y_test[: cuts["test"]],
    )
    return cut, evaluated


def _silent(phase: Phase) -> None:
    return None


def check_against_data(spec: RunSpec, data: Dataset) -> Schedule:
    """The checks of a run against its data that need no model: batch size, length, memory.

    Raises:
        SpecError: one fails.
    """
    check_batch_size(spec.training, len(data.x_train))
    check_length(spec.training, len(data.x_train))
    check_label_kind(spec, data)
    schedule = Schedule.from_spec(spec.training, len(data.x_train))
    check_memory(spec, data.input_shape, data.output_units, schedule.total_steps)
    return schedule


def check_label_kind(spec: RunSpec, data: Dataset) -> None:
    """Refuse class labels stored as floats: an .npz's float labels are regression targets, so
    labels 0.0, 1.0, ... would silently train an MSE regression on class numbers.

    A regression on whole-valued targets is said by naming its loss (`training.loss`).

    Raises:
        SpecError: an .npz's labels are floats, one per example, all whole numbers, and the
            spec names no loss.
    """
    y = data.y_train
    if spec.dataset.name != "npz" or data.task != "regression" or spec.training.loss:
        return
    if not (y.ndim == 1 or y.shape[1:] == (1,)) or not y.size or not np.all(y == np.round(y)):
        return
    values = np.unique(y)
    raise SpecError(
        f"dataset.path: the labels (y_train) are floats that are all whole numbers "
        f"({len(values)} distinct, {values.min():g} to {values.max():g}); float labels are "
        "read as regression targets, so this would train an MSE regression on class numbers. "
        "For classification store them as integers (y.astype('int64')); for a regression on "
        "whole-valued targets say so with training.loss: mse"
    )


def check_runs(runs: Iterable[tuple[str, RunSpec]]) -> None:
    """Make every check `train` makes before building a model, for each run of an ablation, so
    that `plan` and `ablate` refuse what `train` refuses before anything is written.

    Each dataset is read once. A Keras dataset not downloaded yet is skipped (`check_data`
    fetches it before `ablate` trains, and `plan` downloads nothing), and so is data that
    cannot be read: its runs fail and record why, as one run would.

    Args:
        runs: (where, spec) of each run; `where` names the run in a message
            ("arm 'bn', seed 0").

    Raises:
        SpecError: a run fails a check; the message names the run.
    """
    from bnbench.data.datasets import REGISTRY, load_dataset

    loaded: dict[str, Dataset | None] = {}
    for where, spec in runs:
        key = spec.dataset.model_dump_json()
        if key not in loaded:
            here = spec.dataset.path is not None or REGISTRY[spec.dataset.name].cached()
            try:
                loaded[key] = load_dataset(spec.dataset, download=False) if here else None
            except SpecError:  # unreadable data fails its runs, recorded, as train records it
                loaded[key] = None
        data = loaded[key]
        if data is None:
            continue
        try:
            metric_names = loss_and_metrics(spec.training, data.task)[1]
            check_target(spec.training, metric_names)
            check_shift(spec.evaluation.shift, len(data.x_test))
            check_against_data(spec, data)
        except SpecError as err:
            raise SpecError(f"{where}: {err}") from None


def check_data(specs: Iterable[RunSpec]) -> None:
    """Make sure, before any run starts, that the data of every run can be read: a Keras
    dataset missing from the cache is downloaded here, once (`ensure_available`).

    Raises:
        SpecError: a dataset is neither cached nor downloadable; says how many runs need it.
    """
    from bnbench.data.datasets import ensure_available

    ensure_available(spec.dataset for spec in specs)


class _Clock:
    """Seconds between laps, by name."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now


def make_optimizer(training: TrainingSpec, total_steps: int) -> Any:
    """The Keras optimizer and learning-rate schedule that `training` names."""
    import keras

    schedule: Any = training.effective_learning_rate
    if training.schedule.kind == "step":
        schedule = keras.optimizers.schedules.ExponentialDecay(
            training.effective_learning_rate,
            decay_steps=training.schedule.decay_every,
            decay_rate=training.schedule.decay_rate,
            staircase=True,
        )
    elif training.schedule.kind == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(
            training.effective_learning_rate, decay_steps=total_steps, alpha=training.schedule.alpha
        )
    name = OPTIMIZERS[training.optimizer]
    if name == "SGD":
        return keras.optimizers.SGD(
            schedule, momentum=training.momentum, nesterov=training.nesterov
        )
    if name == "RMSprop":
        return keras.optimizers.RMSprop(schedule, momentum=training.momentum)
    return keras.optimizers.Adam(schedule)


def _recorder(
    spec: RunSpec,
    model: Any,
    data: Dataset,
    order: np.ndarray,
    loss_name: str,
    metric_names: list[str],
) -> Any:
    """The diagnostics recorder (None when all are off); its probe is the first batches' examples.

    Raises:
        SpecError: the diagnostics name blocks the model does not have.
    """
    import keras

    from bnbench.train.diagnostics import make_recorder

    probe = order[: spec.diagnostics.probe_size]
    metric = metric_names[0] if metric_names and metric_names[0] == "accuracy" else None
    loss = keras.losses.get(LOSSES[loss_name])
    try:
        return make_recorder(
            spec.diagnostics,
            model,
            data.x_train[probe],
            data.y_train[probe],
            loss,
            metric,
            batch_size=spec.training.batch_size,
        )
    except ValueError as err:
        raise SpecError(f"diagnostics: {err}") from None


def describe(prepared: Prepared) -> dict[str, str]:
    """What `bnbench validate` prints about a prepared run: data, layers, sizes, length."""
    from bnbench.model.build import parameter_counts

    spec, data, schedule = prepared.spec, prepared.data, prepared.schedule
    params = parameter_counts(prepared.model)
    return {
        "backend": prepared.backend + (" (auto)" if spec.backend == "auto" else ""),
        "dataset": f"{spec.dataset.name}: {len(data.x_train)} train / {len(data.x_val)} "
        f"validation / {len(data.x_test)} test, input {list(data.input_shape)}",
        "layers": " → ".join(layer.name for layer in prepared.model.layers),
        "parameters": (
            f"{params['trainable']:,} trainable, {params['non_trainable']:,} non-trainable"
        ),
        "training": f"{schedule.total_steps:,} steps ({schedule.steps_per_epoch} per epoch) at "
        f"batch {spec.training.batch_size}, evaluation every {schedule.eval_steps[0]} steps",
        "loss / metrics": f"{prepared.loss_name} / {', '.join(prepared.metric_names)}",
    }
