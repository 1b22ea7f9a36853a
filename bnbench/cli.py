"""The `bnbench` command line: parse, call one library function, print.

Nothing here imports Keras at module level, so `bnbench --help` is fast. User errors
(`SpecError`) become a message on stderr and exit code 2.

It runs past 300 lines because it declares every command's options (Typer's `Annotated`
parameters are the `--help`); each command body only parses, calls one library function and
prints.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from bnbench import __version__
from bnbench.config.registries import Backend, FigureFormat
from bnbench.errors import SpecError
from bnbench.results import rundir

if TYPE_CHECKING:
    from bnbench.config.schema import RunSpec
    from bnbench.results.rundir import RunSummary

app = typer.Typer(
    help="Measure what Batch Normalization does: train YAML-specified Keras models, run "
    "paired-seed ablations, and draw their curves and BN diagnostics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _show_version(value: bool) -> None:
    if value:
        console.print(f"bnbench {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Measure what Batch Normalization does: train YAML-specified Keras models, run paired-seed
    ablations, and draw their curves and BN diagnostics."""


F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn SpecError into a one-paragraph message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SpecError as err:
            err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except OSError as err:  # an --out that cannot be created or written, say
            where = f"{err.filename}: " if err.filename else ""
            err_console.print(f"[bold red]error:[/] {where}{err.strerror or err}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


SpecPath = Annotated[Path, typer.Argument(help="A run spec (YAML).", show_default=False)]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a spec value: dotted.key=value (repeatable)."),
]
BackendOption = Annotated[
    Backend | None, typer.Option("--backend", help="Override the spec's backend.")
]


def _load(spec_path: Path, overrides: list[str] | None, backend: str | None) -> RunSpec:
    from bnbench.config.loading import load_run_spec

    extra: list[str | tuple[str, Any]] = list(overrides or [])
    if backend is not None:
        extra.append(("backend", backend))
    return load_run_spec(spec_path, extra)


@app.command()
@user_errors
def validate(spec_path: SpecPath, set_: SetOption = None, backend: BackendOption = None) -> None:
    """Check a run spec, print the model and its parameter counts; trains nothing."""
    from bnbench.train.prepare import describe, prepare

    spec = _load(spec_path, set_, backend)
    report = describe(prepare(spec))
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
    from bnbench.results.placement import prepare_run_dir
    from bnbench.train.loop import train as train_run
    from bnbench.train.plan import resolved_config

    spec = _load(spec_path, set_, backend)
    run_dir = prepare_run_dir(out, resolved_config(spec), overwrite=overwrite)
    try:
        with _progress(quiet) as hook:
            result = train_run(spec, run_dir, save_model=save_model, progress=hook)
    except (SpecError, OSError):  # bad input or an --out that cannot be written: exit 2
        raise
    except KeyboardInterrupt:
        err_console.print(f"interrupted: {run_dir} is marked incomplete (INCOMPLETE)")
        raise typer.Exit(130) from None
    except Exception as err:
        err_console.print(
            f"[bold red]run failed:[/] {type(err).__name__}: {err}\n"
            f"recorded as failed in {run_dir} (traceback in {run_dir / rundir.TRACEBACK})",
            highlight=False,
        )
        raise typer.Exit(1) from None
    _print_result(result.summary, run_dir)


@app.command()
def datasets() -> None:
    """List every dataset, where it comes from, and whether it is available offline."""
    from bnbench.data.datasets import describe

    table = Table(title="datasets")
    for column in ("name", "task", "source", "offline", "available"):
        table.add_column(column)
    for row in describe():
        table.add_row(*row.values())
    console.print(table)


AblationPath = Annotated[Path, typer.Argument(help="An ablation spec (YAML).", show_default=False)]
ResultsDir = Annotated[Path, typer.Argument(help="A results directory.", show_default=False)]


@app.command()
@user_errors
def plan(
    ablation_path: AblationPath,
    out: Annotated[Path | None, typer.Option(help="Results directory to check.")] = None,
) -> None:
    """Show the expanded run table (arms, grid cells, seeds, run ids, what is done); trains
    nothing."""
    from bnbench.ablate.runner import plan_table
    from bnbench.config.ablation import load_ablation

    ablation = load_ablation(ablation_path)
    rows = plan_table(ablation, out)
    cells = len({row["cell"] for row in rows})
    table = Table(
        title=f"{ablation.spec.name}: {len(rows)} runs = {len(ablation.spec.arms)} arms × "
        f"{cells} grid cells × {len(ablation.spec.seed_list)} seeds (minus exclusions); "
        f"reference arm {ablation.spec.reference_arm}"
    )
    for column in ("#", "arm", "grid cell", "seed", "backend", "run id", "state"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(str(row["index"]), row["arm"], row["cell"] or "-", str(row["seed"]),
                      row["backend"], row["run_id"], row["state"])  # fmt: skip
    console.print(table)
    if out is None:
        console.print("give --out DIR to see which of these runs are already finished there")
    else:
        done = sum(rundir.is_done(row["state"]) for row in rows)
        console.print(f"{done} of {len(rows)} runs already finished in {out}")


@app.command()
@user_errors
def ablate(
    ablation_path: AblationPath,
    out: Annotated[Path, typer.Option(help="Results directory.")],
    jobs: Annotated[int, typer.Option(help="Runs at once, each in its own process.")] = 1,
    retry_failed: Annotated[bool, typer.Option(help="Re-run runs recorded as failed.")] = False,
    shard: Annotated[
        str | None, typer.Option(help="Run only slice i of n of the grid, as i/n.")
    ] = None,
    save_models: Annotated[bool, typer.Option(help="Write each run's model.keras.")] = False,
    plots: Annotated[bool, typer.Option(help="Draw the figures at the end.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live display.")] = False,
) -> None:
    """Run an ablation: matched arms × grid × paired seeds, in parallel, resumable; then write
    the summary tables (and figures)."""
    from bnbench.ablate.progress import AblationProgress
    from bnbench.ablate.runner import parse_shard, plan_table, run_ablation, shard_runs
    from bnbench.config.ablation import load_ablation

    if jobs < 1:
        raise SpecError(f"--jobs must be at least 1, got {jobs}")
    ablation = load_ablation(ablation_path)
    part = parse_shard(shard)
    selected = {run.run_id for run in shard_runs(ablation.runs, part)}
    finished = sum(rundir.is_done(row["state"]) and row["run_id"] in selected
                   for row in plan_table(ablation, out))  # fmt: skip
    console.print(f"{ablation.spec.name}: {len(selected)} runs selected, {finished} already "
                  f"finished, --jobs {jobs} → {out}")  # fmt: skip
    display = _NoProgress() if quiet else AblationProgress(console, len(selected), finished, jobs)
    with display as listener:
        outcome = run_ablation(ablation, out, jobs=jobs, retry_failed=retry_failed, shard=part,
                               save_model=save_models, listener=listener)  # fmt: skip
    _report(out, latex=False)
    if plots:
        _plots(out, "png")
    if outcome.failed:
        err_console.print(f"[red]{len(outcome.failed)} run(s) failed[/] (traceback.txt in each):")
        for run_id in outcome.failed:
            err_console.print(f"  {run_id}: {outcome.errors.get(run_id, 'recorded earlier')}")
        raise typer.Exit(1)


@app.command()
@user_errors
def report(
    results_dir: ResultsDir,
    latex: Annotated[bool, typer.Option(help="Also write summary.tex.")] = False,
) -> None:
    """Rebuild runs.csv and the summary tables from the stored runs alone."""
    _report(results_dir, latex=latex)


@app.command()
@user_errors
def plot(
    results_dir: ResultsDir,
    format: Annotated[FigureFormat, typer.Option("--format", help="Image format.")] = "png",
    log_loss: Annotated[bool, typer.Option(help="Loss on a log axis.")] = False,
) -> None:
    """Draw learning curves, sensitivity plots and BN diagnostics from a results directory."""
    _plots(results_dir, format, log_loss=log_loss)


@app.command()
@user_errors
def landscape(
    out: Annotated[Path, typer.Option(help="Figure file.")] = Path("results/landscape.png"),
    steps: Annotated[int, typer.Option(help="Gradient-descent steps on each surface.")] = 100,
    num_samples: Annotated[int, typer.Option(help="Examples of two_scale.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the data.")] = 0,
) -> None:
    """Draw the loss surface of a linear model on two_scale with raw vs standardized features:
    why unequal feature scales make a narrow valley and slow gradient descent."""
    from bnbench.analysis.landscape import draw_landscape

    result = draw_landscape(out, num_samples=num_samples, seed=seed, steps=steps)
    for line in result.describe():
        console.print(line, highlight=False)
    console.print(f"wrote {result.path}")


def _report(results_dir: Path, latex: bool) -> None:
    from bnbench.analysis.tables import build_report, render_table

    result = build_report(results_dir, latex=latex)
    console.print(render_table(result))
    console.print(f"tables written to {results_dir}: runs.csv, summary.csv, summary.md, "
                  f"summary.json{', summary.tex' if latex else ''}")  # fmt: skip


def _plots(results_dir: Path, fmt: str, log_loss: bool = False) -> None:
    from bnbench.analysis.plots import render_plots

    paths = render_plots(results_dir, fmt=fmt, log_loss=log_loss)
    noun = "figure" if len(paths) == 1 else "figures"
    console.print(f"{len(paths)} {noun} written to {results_dir / 'plots'} (see index.md)")


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


def _print_result(summary: RunSummary, run_dir: Path) -> None:
    from bnbench.config.registries import lower_is_better

    table = Table(title=f"run {summary.run_id}", show_header=False)
    colour = {"completed": "green", "diverged": "yellow"}.get(summary.status, "red")
    table.add_row("status", f"[{colour}]{summary.status}[/]")
    if summary.diverged_step:
        table.add_row("diverged at step", str(summary.diverged_step))
    table.add_row("backend", str(summary.backend))
    table.add_row("steps", f"{summary.steps_done} / {summary.total_steps}")
    for key, value in summary.final.items():
        table.add_row(key, f"{value:.4f}")
    target = summary.target
    if target.metric:
        reached = target.step if target.step is not None else "not reached"
        relation = "≤" if lower_is_better(target.metric) else "≥"
        table.add_row(f"steps to {target.metric} {relation} {target.value}", str(reached))
    if summary.step_time_ms is not None:
        table.add_row("step time", f"{summary.step_time_ms:.2f} ms")
    table.add_row("run directory", str(run_dir))
    console.print(table)


def main() -> None:
    """Console-script entry point."""
    from bnbench.train.backend import quiet_environment

    quiet_environment()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
