"""What `bnbench validate` prints: a spec checked as far as it can be without training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bnbench.config import RunSpec


def describe_run(spec: RunSpec) -> dict[str, Any]:
    """Load the data and build the model of `spec`; return what a user wants to check.

    Raises:
        SpecError: the data cannot be loaded or the blocks do not fit it.
    """
    from bnbench.backend import activate, choose_backend

    backend = choose_backend(spec)
    activate(backend)
    import numpy as np

    from bnbench.data import load_dataset
    from bnbench.models import build_model, parameter_counts
    from bnbench.training import Plan, check_batch_size, diagnostics_recorder, loss_and_metrics

    data = load_dataset(spec.dataset, spec.seed)
    model = build_model(spec.model, data.input_shape, data.output_units, data.task)
    plan = Plan.from_spec(spec.training, len(data.x_train))
    check_batch_size(spec, len(data.x_train))
    loss, metrics = loss_and_metrics(spec.training, data.task)
    # Builds the probes, which checks the diagnostics' block names; writes nothing.
    diagnostics_recorder(spec, model, data, np.arange(len(data.x_train)), loss, metrics, Path("."))
    params = parameter_counts(model)
    layers = " → ".join(layer.name for layer in model.layers)
    return {
        "backend": backend + (" (auto)" if spec.backend == "auto" else ""),
        "dataset": f"{spec.dataset.name}: {len(data.x_train)} train / {len(data.x_val)} "
        f"validation / {len(data.x_test)} test, input {list(data.input_shape)}",
        "layers": layers,
        "parameters": (
            f"{params['trainable']:,} trainable, {params['non_trainable']:,} non-trainable"
        ),
        "training": f"{plan.total_steps:,} steps ({plan.steps_per_epoch} per epoch) at batch "
        f"{spec.training.batch_size}, evaluation every {plan.eval_steps[0]} steps",
        "loss / metrics": f"{loss} / {', '.join(metrics)}",
    }
