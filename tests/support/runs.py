"""Single run directories as `bnbench train` writes them, for compare and plots: no training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bnbench.results import rundir

STEPS = (10, 20, 30)


def _config(seed: int, norm: str, rate: float, **changes: Any) -> dict[str, Any]:
    config = {
        "name": f"tiny-{norm}-s{seed}",  # a label per run: never a grouping key
        "seed": seed,
        "backend": "jax",
        "dataset": {"name": "digits", "subset": 120},
        "model": {"norm": {"kind": norm}, "blocks": [{"type": "dense", "units": 8}]},
        "training": {"learning_rate": rate, "batch_size": 16, "steps": 30,
                     "target_metric": "val_accuracy", "target_value": 0.5},
    }  # fmt: skip
    for dotted, value in changes.items():
        node = config
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return config


def accuracy(seed: int, norm: str, rate: float) -> float:
    """The test accuracy a hand-built run reports: distinct per run, BN ahead by ~0.1."""
    spread = 0.017 * ((seed * 7) % 5) + (0.009 * seed if norm == "none" else 0.0)
    return round(0.6 + (0.1 if norm == "batch" else 0.0) + rate + spread, 6)


def write_run(
    path: Path,
    seed: int,
    norm: str = "batch",
    rate: float = 0.1,
    *,
    status: str = "completed",
    reached: int | None = 20,
    metric: str | None = "accuracy",
    ran: str = "jax",
    **changes: Any,
) -> Path:
    """A run directory as `bnbench train` writes it (config, history, summary).

    `ran` is the backend its summary records (the one that ran); the config's is `jax` unless
    `backend=` changes it.
    """
    rundir.begin(path, _config(seed, norm, rate, **changes))
    if status == "failed":
        try:
            raise RuntimeError("out of memory")
        except RuntimeError as error:
            rundir.record_failure(path, error)
        return path
    test = accuracy(seed, norm, rate)
    rows = [
        rundir.HistoryRow(step, step / 10, step * 16, step / 100,
                          {"train_loss": 1 - test + 0.3 - step / 100, "val_loss": 1 - test,
                           "train_accuracy": test - 0.3 + step / 100,
                           "val_accuracy": test - 0.2 + step / 150})
        for step in STEPS
    ]  # fmt: skip
    rundir.write_history(path, rows, ["accuracy"])
    if status == "incomplete":
        return path
    final = {"test_loss": 1 - test, "val_loss": 1 - test, "val_accuracy": test}
    final |= {"test_accuracy": test} if metric else {}
    summary = rundir.RunSummary(
        run_id=path.name, status=status, name=path.name, seed=seed, backend=ran,
        metric=metric, metrics=[metric] if metric else [], total_steps=30, steps_done=30,
        batch_size=16, learning_rate=rate, final=final, step_time_ms=1.0,
        target=rundir.Target(metric="val_accuracy", value=0.5, step=reached),
    )  # fmt: skip
    rundir.finish(path, summary)
    return path
