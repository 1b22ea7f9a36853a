"""The `bnbench` command line: parse, call one library function, print.

Nothing here imports Keras at module level, so `bnbench --help` is fast. User errors
(`SpecError`) become a message on stderr and exit code 2.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from bnbench.errors import SpecError

app = typer.Typer(
    help="Measure what Batch Normalization does: train YAML-specified Keras models, run "
    "paired-seed ablations, and draw their curves and BN diagnostics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


class BackendChoice(str, Enum):
    auto = "auto"
    tensorflow = "tensorflow"
    jax = "jax"
    torch = "torch"


def user_errors(func: F) -> F:
    """Turn SpecError into a one-paragraph message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SpecError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


SpecPath = Annotated[Path, typer.Argument(help="A run spec (YAML).", show_default=False)]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a spec value: dotted.key=value (repeatable)."),
]
BackendOption = Annotated[
    BackendChoice | None, typer.Option("--backend", help="Override the spec's backend.")
]


def _load(spec_path: Path, overrides: list[str] | None, backend: BackendChoice | None) -> Any:
    from bnbench.config import load_run_spec

    extra: list[str | tuple[str, Any]] = list(overrides or [])
    if backend is not None:
        extra.append(("backend", backend.value))
    return load_run_spec(spec_path, extra)


@app.command()
@user_errors
def validate(spec_path: SpecPath, set_: SetOption = None, backend: BackendOption = None) -> None:
    """Check a run spec, print the model and its parameter counts; trains nothing."""
    from bnbench.describe import describe_run

    spec = _load(spec_path, set_, backend)
    report = describe_run(spec)
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train one run and write a self-describing run directory."""
    from bnbench.runs import prepare_run_dir
    from bnbench.training import resolved_config
    from bnbench.training import train as train_run

    spec = _load(spec_path, set_, backend)
    run_dir = prepare_run_dir(out, resolved_config(spec), overwrite=overwrite)
    with _progress(quiet) as hook:
        result = train_run(spec, run_dir, save_model=save_model, progress=hook)
    _print_result(result.summary, run_dir)


@app.command()
def datasets() -> None:
    """List every dataset, where it comes from, and whether it is available offline."""
    from bnbench.data import describe

    table = Table(title="datasets")
    for column in ("name", "task", "source", "offline", "available"):
        table.add_column(column)
    for row in describe():
        table.add_row(*row.values())
    console.print(table)


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(quiet: bool) -> Any:
    if quiet:
        return _NoProgress()
    from bnbench.progress import StepProgress

    return StepProgress(console)


def _print_result(summary: dict[str, Any], run_dir: Path) -> None:
    table = Table(title=f"run {summary.get('run_id')}", show_header=False)
    status = summary["status"]
    colour = {"completed": "green", "diverged": "yellow"}.get(status, "red")
    table.add_row("status", f"[{colour}]{status}[/]")
    if summary.get("diverged_step"):
        table.add_row("diverged at step", str(summary["diverged_step"]))
    table.add_row("backend", summary["backend"])
    table.add_row("steps", f"{summary.get('steps_done')} / {summary['total_steps']}")
    for key, value in summary.get("final", {}).items():
        table.add_row(key, f"{value:.4f}")
    target = summary.get("target", {})
    if target.get("metric"):
        reached = target["step"] if target["step"] is not None else "not reached"
        table.add_row(f"steps to {target['metric']} ≥ {target['value']}", str(reached))
    if summary.get("step_time_ms") is not None:
        table.add_row("step time", f"{summary['step_time_ms']:.2f} ms")
    table.add_row("run directory", str(run_dir))
    console.print(table)


def main() -> None:
    """Console-script entry point."""
    from bnbench.backend import quiet_environment

    quiet_environment()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
