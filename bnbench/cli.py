"""The `bnbench` command line: parse, call one library function, print.

Nothing here imports Keras at module level, so `bnbench --help` is fast. User errors
(`SpecError`) become a message on stderr and exit code 2.

It runs past 300 lines because it declares every command's options (Typer's `Annotated`
parameters are the `--help`); each command body only parses, calls one library function and
prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bnbench import __version__
from bnbench.claims.commands import claims_app
from bnbench.config.registries import Backend, FigureFormat
from bnbench.errors import SpecError, user_errors
from bnbench.results import rundir

if TYPE_CHECKING:
    from bnbench.ablate.executor import ExecutorOptions
    from bnbench.ablate.runner import Outcome
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train one run and write a self-describing run directory."""
    from bnbench.results.placement import claim_run_dir
    from bnbench.train.loop import train as train_run
    from bnbench.train.plan import resolved_config

    spec = _load(spec_path, set_, backend)
    with claim_run_dir(out, resolved_config(spec), overwrite=overwrite) as run_dir:
        try:
            with _progress(quiet) as hook:
                result = train_run(spec, run_dir, save_model=save_model, progress=hook)
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
    _print_result(result.summary, run_dir)


@app.command()
def datasets() -> None:
    """List every dataset, where it comes from, and whether it is available offline."""
    from bnbench.data.datasets import describe

    table = Table(title="datasets")
    for column in ("name", "task", "source", "offline", "available", "cache"):
        table.add_column(column, overflow="fold")
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
    """Show the expanded run table (arms, grid cells, seeds, run ids, what is done) and warn
    about how a varied batch size is budgeted; trains nothing."""
    from bnbench.ablate.runner import plan_table
    from bnbench.config.ablation import budget_warnings, load_ablation

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
    for message in budget_warnings(ablation):
        console.print(f"warning: {message}", style="yellow", markup=False, highlight=False)


ExecutorChoice = Literal["local", "ray", "slurm"]
SlurmClusterChoice = Literal["slurm", "local"]


@app.command()
@user_errors
def ablate(
    ablation_path: AblationPath,
    out: Annotated[Path, typer.Option(help="Results directory.")],
    jobs: Annotated[
        int | None,
        typer.Option(
            help="Runs at once (default: 1 here; with ray, what the cluster fits; "
            "with slurm, all: SLURM queues them).",
            show_default=False,
        ),
    ] = None,
    retry_failed: Annotated[bool, typer.Option(help="Re-run runs recorded as failed.")] = False,
    shard: Annotated[
        str | None, typer.Option(help="Run only slice i of n of the grid, as i/n.")
    ] = None,
    save_models: Annotated[bool, typer.Option(help="Write each run's model.keras.")] = False,
    plots: Annotated[bool, typer.Option(help="Draw the figures at the end.")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live display.")] = False,
    executor: Annotated[
        ExecutorChoice,
        typer.Option(
            help="Where runs train: worker processes here, a Ray cluster, or SLURM jobs (submitit)."
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            help="ray: the cluster to join, 'auto' or host:port (default: start Ray here)."
        ),
    ] = None,
    cpus_per_run: Annotated[
        int | None,
        typer.Option(
            help="ray, slurm: CPU cores of each run, its thread cap (default 1).",
            show_default=False,
        ),
    ] = None,
    gpus_per_run: Annotated[int, typer.Option(help="ray, slurm: GPUs of each run.")] = 0,
    partition: Annotated[str | None, typer.Option(help="slurm: the partition.")] = None,
    time_minutes: Annotated[
        int | None,
        typer.Option(
            "--time",
            help="slurm: time limit of each run's job, in minutes (default 60).",
            show_default=False,
        ),
    ] = None,
    slurm_option: Annotated[
        list[str] | None,
        typer.Option(
            help="slurm: another sbatch option as key=value, e.g. account=ml (repeatable)."
        ),
    ] = None,
    slurm_cluster: Annotated[
        SlurmClusterChoice,
        typer.Option(
            help="slurm: 'local' runs the jobs on this machine (submitit's local "
            "executor), to try the setup without a cluster."
        ),
    ] = "slurm",
) -> None:
    """Run an ablation: matched arms × grid × paired seeds, in parallel, resumable; then write
    the summary tables (and figures).

    Several invocations may fill one --out at once (shards, machines, executors): each run is
    claimed before it trains, so none trains twice. Ctrl-C stops launching runs and waits for
    the running ones; a second Ctrl-C stops them too. Unfinished runs are left incomplete: the
    same command resumes the grid."""
    from bnbench.ablate.executor import ExecutorOptions

    options = ExecutorOptions(
        executor, jobs, address, cpus_per_run, gpus_per_run, partition, time_minutes,
        _key_values(slurm_option or [], "--slurm-option"), slurm_cluster,
    )  # fmt: skip
    options.check()
    command = _ablate_command(ablation_path, out, jobs, retry_failed, shard, save_models, plots,
                              quiet, options.command_words())  # fmt: skip
    resume = f"to resume, run the same command: {command}"
    try:
        outcome = _run_grid(ablation_path, out, options, retry_failed, shard, save_models, quiet)
        if outcome.interrupted and outcome.unfinished:
            midway = len(outcome.stopped_midway)
            stopped = f" ({midway} stopped midway, left incomplete)" if midway else ""
            left = f"{outcome.unfinished} of {outcome.total} runs not finished{stopped}"
            err_console.print(f"interrupted: {left}; {resume}", highlight=False, soft_wrap=True)
            raise typer.Exit(130)
        if outcome.elsewhere:
            _print_elsewhere(out, outcome.elsewhere)
        else:  # the last one out writes the tables
            _report(out, latex=False)
            if plots:
                _plots(out, "png")
    except KeyboardInterrupt:  # outside the runs (loading, tables, figures): no run is affected
        err_console.print(f"interrupted; {resume}", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    for run_id, why in outcome.lost.items():
        err_console.print(f"[red]lost[/] {run_id}: {escape(why)}", highlight=False)
    if outcome.lost:
        err_console.print(f"{len(outcome.lost)} run(s) lost their worker and are left "
                          f"incomplete; {resume}", highlight=False, soft_wrap=True)  # fmt: skip
    if outcome.failed:
        err_console.print(f"[red]{len(outcome.failed)} run(s) failed[/] (traceback.txt in each):")
        for run_id in outcome.failed:
            err_console.print(f"  {run_id}: {outcome.errors.get(run_id, 'recorded earlier')}")
    if outcome.failed or outcome.lost:
        raise typer.Exit(1)


def _key_values(pairs: list[str], option: str) -> dict[str, str]:
    """['account=ml', ...] -> {'account': 'ml', ...}."""
    found = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"{option} expects key=value, got {pair!r}")
        found[key.strip()] = value.strip()
    return found


def _print_elsewhere(out: Path, elsewhere: dict[str, str]) -> None:
    holders: dict[str, int] = {}
    for holder in elsewhere.values():
        holders[holder] = holders.get(holder, 0) + 1
    who = ", ".join(f"{holder} ({n} run{'s' if n != 1 else ''})" for holder, n in holders.items())
    console.print(f"{len(elsewhere)} run(s) of this grid are still being trained by other "
                  f"invocations: {who}. The last to finish writes the tables; see "
                  f"`bnbench status {out}`.", highlight=False)  # fmt: skip


def _run_grid(ablation_path: Path, out: Path, options: ExecutorOptions, retry_failed: bool,
              shard: str | None, save_models: bool, quiet: bool) -> Outcome:  # fmt: skip
    """Load the ablation, say what will run, and run it behind the live display."""
    from bnbench.ablate.progress import AblationProgress, QuietProgress
    from bnbench.ablate.runner import parse_shard, plan_table, run_ablation, shard_runs
    from bnbench.config.ablation import load_ablation

    ablation = load_ablation(ablation_path)
    part = parse_shard(shard)
    selected = {run.run_id for run in shard_runs(ablation.runs, part)}
    finished = sum(rundir.is_done(row["state"]) and row["run_id"] in selected
                   for row in plan_table(ablation, out))  # fmt: skip
    where = f"--jobs {options.jobs or 1}" if options.name == "local" else f"on {options.name}"
    console.print(f"{ablation.spec.name}: {len(selected)} runs selected, {finished} already "
                  f"finished, {where} → {out}")  # fmt: skip
    slots = options.jobs or (1 if options.name == "local" else max(1, len(selected)))
    display = (QuietProgress(err_console) if quiet
               else AblationProgress(console, len(selected), finished, slots))  # fmt: skip
    with display as listener:
        return run_ablation(ablation, out, retry_failed=retry_failed, shard=part,
                            save_model=save_models, listener=listener,
                            executor=options)  # fmt: skip


def _ablate_command(ablation_path: Path, out: Path, jobs: int | None, retry_failed: bool,
                    shard: str | None, save_models: bool, plots: bool, quiet: bool,
                    executor_words: list[str]) -> str:  # fmt: skip
    """The `bnbench ablate` command line with these options, to copy and paste."""
    import shlex

    words = ["bnbench", "ablate", str(ablation_path), "--out", str(out), *executor_words]
    if jobs is not None and jobs != 1:
        words += ["--jobs", str(jobs)]
    if shard is not None:
        words += ["--shard", shard]
    flags = {"--retry-failed": retry_failed, "--save-models": save_models,
             "--no-plots": not plots, "--quiet": quiet}  # fmt: skip
    return shlex.join(words + [flag for flag, given in flags.items() if given])


@app.command()
@user_errors
def status(results_dir: ResultsDir) -> None:
    """Show each run of an ablation's results tree: done, failed, incomplete, or running (and
    by whom: host:pid, seconds since its last heartbeat); flags stale claims, whose runs the
    next `ablate` takes over. Reads the tree only."""
    from bnbench.ablate.status import counts, grid_status, holders

    rows = grid_status(results_dir)
    table = Table(title=f"{results_dir}: {len(rows)} runs")
    for column in ("run id", "arm", "grid cell", "seed", "state", "claimed by", "heartbeat"):
        table.add_column(column, overflow="fold")
    colours = {"completed": "green", "diverged": "yellow", "failed": "red", "running": "cyan"}
    for row in rows:
        claim, state = row.claim, row.state
        shown = f"[{colours[state]}]{state}[/]" if state in colours else state
        by = claim.holder if claim is not None else ""
        age = f"{claim.age():.0f} s ago" if claim is not None else ""
        if row.stale is not None:
            age += f" [red](stale: {row.stale})[/]"
        table.add_row(row.run_id, row.arm, row.cell or "-", str(row.seed), shown, by, age)
    console.print(table)
    console.print(", ".join(f"{n} {state}" for state, n in counts(rows).items()))
    for holder, n in holders(rows).items():
        console.print(f"{holder}: {n} run{'s' if n != 1 else ''} running", highlight=False)


@app.command()
@user_errors
def report(
    results_dir: ResultsDir,
    latex: Annotated[bool, typer.Option(help="Also write summary.tex.")] = False,
    html: Annotated[
        bool, typer.Option(help="Also write report.html: one self-contained page of it all.")
    ] = False,
    spec: Annotated[
        Path | None,
        typer.Option(
            help="With --html: the ablation file, whose header (the question) heads "
            "the page; the results tree keeps only the resolved spec."
        ),
    ] = None,
) -> None:
    """Rebuild runs.csv, histories.csv and the summary tables from the stored runs alone.

    With --html, also report.html: the question, tables, figures, notes, failed runs and versions
    on one page that opens offline."""
    if spec is not None and not html:
        raise SpecError("--spec is used only with --html")
    _report(results_dir, latex=latex)
    if html:
        from bnbench.export.html_report import write_html_report

        console.print(f"wrote {write_html_report(results_dir, spec=spec)}")


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


export_app = typer.Typer(
    help="Export a results tree to the tools researchers already use (TensorBoard, MLflow); "
    "reads the tree only, and replaces an earlier export.",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export")
app.add_typer(claims_app, name="claims")  # list | run | report: bnbench/claims/commands.py


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


def _report(results_dir: Path, latex: bool) -> None:
    from bnbench.analysis.tables import build_report, render_table
    from bnbench.export.histories import write_histories

    result = build_report(results_dir, latex=latex)
    write_histories(results_dir)
    console.print(render_table(result))
    console.print(f"tables written to {results_dir}: runs.csv, histories.csv, summary.csv, "
                  f"summary.md, summary.json{', summary.tex' if latex else ''}")  # fmt: skip


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
