"""`bnbench export tensorboard|mlflow`: the results tree in the tools researchers use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bnbench.cli.common import ResultsDir, app, console
from bnbench.errors import user_errors

export_app = typer.Typer(
    help="Export a results tree to the tools researchers already use (TensorBoard, MLflow); "
    "reads the tree only, and replaces an earlier export.",
    no_args_is_help=True,
    rich_markup_mode="markdown",  # paragraphs rewrap; `code` shows as code
)
app.add_typer(export_app, name="export")


@export_app.command("tensorboard")
@user_errors
def export_tensorboard(
    results_dir: ResultsDir,
    logdir: Annotated[
        Path | None, typer.Option(help="Log directory (default: RESULTS_DIR/tensorboard).")
    ] = None,
) -> None:
    """Write TensorBoard event files: a run per arm, grid cell and seed, and the HParams tab.

    Every history metric and diagnostic against the step; the HParams tab compares arm, grid
    values and seed on the final metrics. Needs bnbench's `tensorboard` extra."""
    import shlex

    from bnbench.export.tensorboard_events import export_tensorboard as export

    result = export(results_dir, logdir)
    console.print(f"{result.runs} runs, {result.scalars} scalars written to {result.logdir} "
                  f"(hparams: {', '.join(result.hparams)})", highlight=False,
                  soft_wrap=True)  # fmt: skip
    console.print(f"view: tensorboard --logdir {shlex.quote(str(result.logdir))}",
                  highlight=False, soft_wrap=True)  # fmt: skip


@export_app.command("mlflow")
@user_errors
def export_mlflow(
    results_dir: ResultsDir,
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="Tracking store (default: sqlite:///RESULTS_DIR/mlflow.db)."),
    ] = None,
) -> None:
    """Log the ablation to MLflow: a parent run with a nested run per bnbench run.

    Config as params, history as metrics by step, arm/cell/seed/status tags; tables and figures
    on the parent. Exporting again replaces only runs that changed. Needs bnbench's `mlflow`
    extra."""
    import shlex

    from bnbench.export.mlflow_runs import export_mlflow as export

    result = export(results_dir, tracking_uri)
    logged, unchanged = len(result.logged), len(result.unchanged)
    console.print(f"experiment {result.experiment!r} in {result.tracking_uri}: {logged} runs "
                  f"logged, {unchanged} unchanged", highlight=False,
                  soft_wrap=True)  # fmt: skip
    console.print(f"view: mlflow ui --backend-store-uri {shlex.quote(result.tracking_uri)}",
                  highlight=False, soft_wrap=True)  # fmt: skip
