"""Commands on one run: `validate`, `train`, `datasets`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from bnbench.cli.common import (
    BackendOption,
    SetOption,
    SpecPath,
    app,
    console,
    err_console,
    load_spec,
)
from bnbench.cli.tables import show
from bnbench.errors import SpecError, user_errors
from bnbench.results import rundir

if TYPE_CHECKING:
    from bnbench.config.schema import RunSpec
    from bnbench.results.rundir import RunSummary


@app.command()
@user_errors
def validate(spec_path: SpecPath, set_: SetOption = None, backend: BackendOption = None) -> None:
    """Check a run spec, print the model and its parameter counts; trains nothing."""
    from bnbench.train.prepare import describe, prepare

    spec = load_spec(spec_path, set_, backend)
    report = describe(prepare(spec, download=False))
    console.print(f"[green]✓[/] {spec_path}: valid spec [bold]{spec.name}[/]")
    table = Table(show_header=False, box=None)
    for key, value in report.items():
        table.add_row(key, str(value))
    console.print(table)


@app.command()
@user_errors
def train(
    spec_path: SpecPath,
    set_: SetOption = None,
    backend: BackendOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default: results/<run id>).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a finished run in --out.")] = False,
    save_model: Annotated[bool, typer.Option(help="Write model.keras.")] = True,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No set-up messages, no progress bar.")
    ] = False,
) -> None:
    """Train one run and write a self-describing run directory.

    Before the first step it says what it is doing (importing Keras, loading data, building
    the model, compiling) and then how long each took; then a bar of steps, loss and ETA."""
    from bnbench.results.destination import reserve_run_dir
    from bnbench.train.loop import train as train_run
    from bnbench.train.schedule import resolved_config

    spec = load_spec(spec_path, set_, backend)
    with reserve_run_dir(out, resolved_config(spec), overwrite=overwrite) as run_dir:
        try:
            with _progress(quiet) as shown:  # None when quiet
                phase = shown.phase if shown is not None else None
                result = train_run(spec, run_dir, save_model=save_model, progress=shown,
                                   phase=phase)  # fmt: skip
        except (SpecError, OSError):  # bad input or an --out that cannot be written: exit 2
            raise
        except KeyboardInterrupt:
            err_console.print(f"interrupted: {run_dir} is marked incomplete (INCOMPLETE)")
            raise typer.Exit(130) from None
        except Exception as err:
            recorded = rundir.run_state(run_dir) == "failed"
            where = (
                f"recorded as failed in {run_dir} (traceback in {run_dir / rundir.TRACEBACK})"
                if recorded
                else "it failed before the run directory was written; nothing was recorded"
            )
            err_console.print(
                f"[bold red]run failed:[/] {type(err).__name__}: {err}\n{where}", highlight=False
            )
            raise typer.Exit(1) from None
    _print_result(result.summary, run_dir, spec)


@app.command()
def datasets() -> None:
    """List every dataset, where it comes from, and whether it is available offline."""
    from bnbench.data.datasets import describe

    table = Table(title="datasets")
    for column in ("name", "task", "source", "offline", "available", "cache"):
        table.add_column(column, overflow="fold")
    for row in describe():  # escaped: 'pip install "bnbench[mnist1d]"' is not markup
        table.add_row(*(escape(str(value)) for value in row.values()))
    show(table, console)


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __call__(self, *args: Any) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(quiet: bool) -> Any:
    if quiet:
        return _NoProgress()
    from bnbench.ablate.progress import StepProgress

    return StepProgress(console)


def _print_result(summary: RunSummary, run_dir: Path, spec: RunSpec) -> None:
    from bnbench.config.registries import lower_is_better

    table = Table(title=f"run {summary.run_id}", show_header=False)
    colour = {"completed": "green", "diverged": "yellow"}.get(summary.status, "red")
    table.add_row("status", f"[{colour}]{summary.status}[/]")
    if summary.diverged_step:
        # A non-finite loss is seen at the end of its group of steps; the factor rule is
        # checked at evaluation points, so its step is exact.
        per_call = spec.training.steps_per_execution
        grouped = per_call > 1 and (summary.diverged_reason or "").startswith("non-finite")
        within = f" (within the last {per_call}: steps_per_execution)" if grouped else ""
        table.add_row("diverged at step", f"{summary.diverged_step}{within}")
    table.add_row("backend", str(summary.backend))
    table.add_row("steps", f"{summary.steps_done} / {summary.total_steps}")
    for key, value in summary.final.items():
        table.add_row(key, f"{value:.4f}")
    shift = spec.evaluation.shift
    for key, value in summary.shifted.items():  # "test_accuracy@n32": BN re-estimated on 32
        name, _, how = key.partition("@")
        if summary.bn_layers == 0:
            if how != "moving":
                continue  # nothing to re-estimate: the same number as the training statistics
            how = "no batch norm"
        else:
            how = "training BN statistics" if how == "moving" else f"BN re-estimated on {how[1:]}"
        where = "shifted"
        if shift is not None:  # contrast's severity is a factor: 1 is no change, 0 is flat
            where = (f"noise std {shift.severity:g}" if shift.kind == "noise"
                     else f"contrast ×{shift.severity:g}")  # fmt: skip
        table.add_row(f"{name} ({where}, {how})", f"{value:.4f}")
    target = summary.target
    if target.metric:
        reached = target.step if target.step is not None else "not reached"
        relation = "≤" if lower_is_better(target.metric) else "≥"
        table.add_row(f"steps to {target.metric} {relation} {target.value}", str(reached))
    if summary.step_time_ms is not None:
        table.add_row("step time", f"{summary.step_time_ms:.2f} ms")
    table.add_row("run directory", str(run_dir))
    console.print(table)
    from bnbench.results.bn_warmup import warmup_note

    note = warmup_note(summary)
    if note is not None:
        console.print(note, style="yellow", markup=False, highlight=False)
