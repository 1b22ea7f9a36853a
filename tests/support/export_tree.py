"""A tiny hand-built ablation for the export tests, written through the run-directory contract.

Two arms (bn, plain) x two learning rates x two seeds. Every history value is `value(...)` of
its run, step and column, so a test can compare what an export holds with what was written.
Special runs: plain at lr 0.1, seed 1 diverged at step 20; bn at lr 0.01, seed 1 failed before
training; plain at lr 0.01, seed 1 is unfinished (history, no summary).
"""

from __future__ import annotations

from pathlib import Path

from bnbench.analysis.tables import build_report
from bnbench.results import rundir
from bnbench.results.files import write_csv, write_json, write_yaml
from bnbench.results.layout import run_path

NAME = "tiny_bn"
ARMS = ("bn", "plain")
KEY = "training.learning_rate"
RATES = (0.01, 0.1)
SEEDS = (0, 1)
STEPS = (10, 20, 30)
VIEWS = ("train_mode", "moving")
COLUMNS = rundir.history_columns(["accuracy"], VIEWS)
METRICS = [c for c in COLUMNS if c.startswith(("train_", "val_"))]
DIVERGED, FAILED, UNFINISHED = ("plain", 0.1, 1), ("bn", 0.01, 1), ("plain", 0.01, 1)
STARTED = "2026-01-02T03:04:05"
LONG_PATH = "/data/" + "x" * 7000  # a config value longer than MLflow's param limit
HEADER = "# tiny_bn: does BN help at a small and a large learning rate?\n# Run:  bnbench ablate x\n"


def run_id(arm: str, rate: float, seed: int) -> str:
    return f"{arm}-lr{rate}-s{seed}"


def cell(rate: float) -> str:
    """The cell label the tree reader gives (`grid_labels`): short key, value."""
    return f"lr={rate:g}"


def value(arm: str, rate: float, seed: int, step: int, column: str) -> float:
    """The history value a run holds: distinct for every run, step and column."""
    base = ARMS.index(arm) + 10 * rate + 0.01 * seed + 0.001 * step
    return round(base + METRICS.index(column) / 100, 6)


def percentile(arm: str, seed: int, step: int, units: str, name: str) -> float:
    return (
        {"p15": -1.0, "p50": 0.0, "p85": 1.0}[name]
        + 0.01 * step
        + 0.1 * seed
        + (0.5 if units != "pooled" else 0.0)
        + ARMS.index(arm)
    )


def write_tree(root: Path, *, report: bool = True) -> Path:
    """Write the ablation under `root` (and its tables, with `report`)."""
    root.mkdir(parents=True, exist_ok=True)
    arms = {"bn": {"model.norm.kind": "batch"}, "plain": {"model.norm.kind": "none"}}
    spec = {"name": NAME, "arms": arms, "grid": {KEY: list(RATES)}, "seeds": list(SEEDS),
            "reference": "plain"}  # fmt: skip
    write_yaml(root / "ablation.yaml", spec)
    write_json(root / "manifest.json", {
        "ablation": NAME, "started_at": STARTED, "finished_at": "2026-01-02T03:05:00",
        "versions": {"bnbench": "0.1.0", "keras": "3.99.0"},
        "machine": {"platform": "Linux-test", "cpu_count": 2}, "backends": ["jax"], "runs": 8,
    })  # fmt: skip
    for arm in ARMS:
        for rate in RATES:
            for seed in SEEDS:
                _write_run(root, arm, rate, seed)
    if report:
        build_report(root)
    return root


def _write_run(root: Path, arm: str, rate: float, seed: int) -> None:
    key = (arm, rate, seed)
    run_dir = run_path(root, run_id(arm, rate, seed))
    config = {
        "name": arm, "seed": seed, "backend": "jax",
        "dataset": {"name": "digits", "path": LONG_PATH},
        "model": {"norm": {"kind": "batch" if arm == "bn" else "none"},
                  "blocks": [{"type": "dense", "units": 8}, {"type": "dense", "units": 4}]},
        "training": {"learning_rate": rate, "batch_size": 16, "metrics": None},
    }  # fmt: skip
    rundir.begin(run_dir, config)
    rundir.write_entry(run_dir, {"arm": arm, "grid": {KEY: rate}, "seed": seed,
                                 "cell": f"{KEY}={rate}"})  # fmt: skip
    summary = rundir.RunSummary(run_id=run_dir.name, status="completed", name=arm, seed=seed)
    if key == FAILED:
        try:
            raise RuntimeError("out of memory")
        except RuntimeError as error:
            rundir.record_failure(run_dir, error, summary)
        return
    steps = STEPS[:2] if key == DIVERGED else STEPS
    rows = []
    for step in steps:
        values = {column: value(arm, rate, seed, step, column) for column in METRICS}
        if key == DIVERGED and step == 20:
            values = {column: float("nan") for column in METRICS} | {"train_loss": float("inf")}
        rows.append(rundir.HistoryRow(step, step / 10, step * 16, step / 100, values))
    rundir.write_history(run_dir, rows, ["accuracy"], VIEWS)
    _write_diagnostics(run_dir, arm, seed, steps)
    if key == UNFINISHED:
        return
    last = rows[-1].values
    summary = summary.model_copy(update={
        "status": "diverged" if key == DIVERGED else "completed", "backend": "jax",
        "metric": "accuracy", "metrics": ["accuracy"], "total_steps": 30, "steps_done": steps[-1],
        "started_at": STARTED, "finished_at": "2026-01-02T03:04:35",
        "diverged_step": 20 if key == DIVERGED else None,
        "diverged_reason": "loss is not finite" if key == DIVERGED else None,
        "final": {} if key == DIVERGED else {
            "test_loss": last["val_loss"] + 0.5, "test_accuracy": last["val_accuracy"] - 0.5,
            "val_loss": last["val_loss"], "val_accuracy": last["val_accuracy"],
        },
        "batch_size": 16, "learning_rate": rate, "step_time_ms": 1.5, "train_seconds": 0.3,
    })  # fmt: skip
    rundir.finish(run_dir, summary)


def _write_diagnostics(run_dir: Path, arm: str, seed: int, steps: tuple[int, ...]) -> None:
    percentiles = [
        {"step": step, "layer": "block1", "units": units,
         **{name: percentile(arm, seed, step, units, name) for name in ("p15", "p50", "p85")}}
        for step in (0, *steps) for units in ("pooled", "3")
    ]  # fmt: skip
    columns = ["step", "layer", "units", "p15", "p50", "p85"]
    write_csv(rundir.diagnostics_path(run_dir, "activation_percentiles"), percentiles, columns)
    gap = [{"step": step, "train_mode_loss": 0.1 * step, "inference_mode_loss": 0.2 * step}
           for step in (0, *steps)]  # fmt: skip
    write_csv(rundir.diagnostics_path(run_dir, "train_inference_gap"), gap,
              ["step", "train_mode_loss", "inference_mode_loss"])  # fmt: skip
