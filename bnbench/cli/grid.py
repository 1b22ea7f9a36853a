"""Commands on an ablation grid: `plan`, `ablate`, `status`."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.table import Table

from bnbench.cli.common import (
    AblationPath,
    GroupSizeOption,
    ResultsDir,
    app,
    console,
    draw_figures,
    err_console,
    write_tables,
)
from bnbench.cli.tables import show
from bnbench.errors import SpecError, user_errors
from bnbench.results import rundir

if TYPE_CHECKING:
    from bnbench.ablate.executor import ExecutorOptions
    from bnbench.ablate.runner import Outcome
    from bnbench.config.ablation import Ablation

_SET_HELP = (
    "Override a value of every run: dotted.key=value (repeatable). Acts as one more entry at "
    "the end of the ablation's overrides: the arms and the grid are applied after it, so a key "
    "they set is refused. "
)
AblationSetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help=_SET_HELP + "Recorded in the results tree's ablation.yaml; changed runs get new "
        "run ids; give the same --set again to resume.",
        show_default=False,
    ),
]
PlanSetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help=_SET_HELP + "Shows the runs as ablate would apply it (changed runs get new run "
        "ids); plan writes nothing.",
        show_default=False,
    ),
]


@app.command()
@user_errors
def plan(
    ablation_path: AblationPath,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Results directory to check: which runs are finished, and whether "
            "ablate would accept it."
        ),
    ] = None,
    set_: PlanSetOption = None,
    jobs: Annotated[
        int | None,
        typer.Option(min=1, help="Runs at once, for the estimate (default: as ablate, one per "
                     "available core).", show_default=False),
    ] = None,
    group_size: GroupSizeOption = 16,
    estimate: Annotated[
        bool,
        typer.Option(
            "--estimate",
            help="Without finished runs in --out to time, train one run (or vectorized group) "
            "of each backend for a few dozen steps, as ablate's workers would (in a temporary "
            "folder), to estimate the runtime.",
        ),
    ] = False,
) -> None:
    """Show the expanded run table (arms, grid cells, seeds, run ids, what is done), warn
    about how a varied batch size is budgeted, and estimate the runtime; writes nothing.

    The runtime is estimated from the timings of finished runs in --out (matched by backend,
    model, data and batch size), or with --estimate from a short probe run."""
    from bnbench.ablate.estimate import describe_estimate, estimate_runtime
    from bnbench.ablate.groups import describe_units, group_memories, unit_of
    from bnbench.ablate.local_executor import available_cores
    from bnbench.ablate.probe import probe_costs
    from bnbench.ablate.runner import check_out_folder, destination_refusal, plan_table
    from bnbench.config.ablation import load_ablation, selection_warning
    from bnbench.config.budget import budget_warnings
    from bnbench.train.prepare import check_runs

    ablation = load_ablation(ablation_path, set_ or [])
    check_runs((run.where, run.spec) for run in ablation.runs)  # as ablate and train would
    refusal = None
    if out is not None:
        check_out_folder(out)
        refusal = destination_refusal(ablation, out)
    # A folder ablate would refuse says nothing about these runs: neither states nor timings.
    usable = out if refusal is None else None
    rows = plan_table(ablation, usable)
    cells = len({row["cell"] for row in rows})
    table = Table(
        title=f"{ablation.spec.name}: {len(rows)} runs = {len(ablation.spec.arms)} arms × "
        f"{cells} grid cells × {len(ablation.spec.seed_list)} seeds (minus exclusions); "
        f"reference arm {ablation.spec.reference_arm}"
    )
    for column in ("#", "arm", "grid cell", "seed", "backend", "group", "run id", "state"):
        table.add_column(column, **_fit(column))
    workers = jobs or available_cores()
    memories = group_memories(ablation.runs, group_size, workers)
    group_of = unit_of(ablation.runs, group_size, workers, memories)
    for row in rows:
        label = (escape(row["arm"]), escape(row["cell"] or "-"), str(row["seed"]))
        run_id = escape(row["run_id"])
        table.add_row(str(row["index"]), *label, row["backend"], group_of[row["run_id"]],
                      run_id, row["state"])  # fmt: skip
    show(table, console)
    for line in describe_units(ablation.runs, group_size, workers, memories):
        console.print(line, markup=False, highlight=False)
    if out is None:
        console.print("give --out DIR to see which of these runs are already finished there")
    elif refusal is not None:
        console.print(f"warning: ablate would refuse this folder: {refusal}", style="yellow",
                      markup=False, highlight=False)  # fmt: skip
    else:
        done = sum(rundir.is_done(row["state"]) for row in rows)
        console.print(f"{done} of {len(rows)} runs already finished in {out}")
    _print_sets(ablation)
    for message in [*budget_warnings(ablation), selection_warning(ablation)]:
        if message is None:
            continue
        console.print(f"warning: {message}", style="yellow", markup=False, highlight=False)
    with console.status("timing a probe run…") if estimate else nullcontext():
        predicted = estimate_runtime(ablation, usable, workers, group_size=group_size,
                                     probe=probe_costs if estimate else None)
    where = usable if refusal is None else f"{out} (ablate would refuse it)"
    for line in describe_estimate(predicted, where, probe=estimate):
        console.print(line, markup=False, highlight=False)


def _fit(column: str) -> dict[str, Any]:
    """How a column of the run tables fits a narrow terminal: a run id stays on one line (it
    is copied and searched for whole), and so does a state (one short word); the others fold."""
    return {"no_wrap": True} if column in ("run id", "state") else {"overflow": "fold"}


def _print_sets(ablation: Ablation) -> None:
    from bnbench.config.sets import set_options

    if ablation.sets:
        console.print(f"applied to every run after the overrides, before arms and grid: "
                      f"{set_options(ablation.sets)}", markup=False, highlight=False)  # fmt: skip


ExecutorChoice = Literal["local", "ray", "slurm"]
SlurmClusterChoice = Literal["slurm", "local"]


@app.command()
@user_errors
def ablate(
    ablation_path: AblationPath,
    out: Annotated[Path, typer.Option(help="Results directory.")],
    set_: AblationSetOption = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            help="Runs at once (default: one per core available here; with ray, what the "
            "cluster fits; "
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
    group_size: GroupSizeOption = 16,
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
    leased before it trains, so none trains twice. Ctrl-C stops launching runs and waits for
    the running ones; a second Ctrl-C stops them too. Unfinished runs are left incomplete: the
    same command resumes the grid."""
    from bnbench.ablate.executor import ExecutorOptions

    options = ExecutorOptions(
        executor, jobs, address, cpus_per_run, gpus_per_run, partition, time_minutes,
        _key_values(slurm_option or [], "--slurm-option"), slurm_cluster,
    )  # fmt: skip
    options.check()
    command = _ablate_command(ablation_path, out, jobs, retry_failed, shard, save_models, plots,
                              quiet, options.command_words(), set_ or [], group_size)  # fmt: skip
    resume = f"to resume, run the same command: {command}"
    try:
        outcome = _run_grid(ablation_path, out, options, retry_failed, shard, save_models, quiet,
                            set_ or [], group_size)  # fmt: skip
        if outcome.interrupted and outcome.unfinished:
            midway = len(outcome.stopped_midway)
            stopped = f" ({midway} stopped midway, left incomplete)" if midway else ""
            left = f"{outcome.unfinished} of {outcome.total} runs not finished{stopped}"
            err_console.print(f"interrupted: {left}; {resume}", highlight=False, soft_wrap=True)
            raise typer.Exit(130)
        if outcome.elsewhere:
            _print_elsewhere(out, outcome.elsewhere)
        else:  # the last one out writes the tables
            write_tables(out, latex=False)
            if plots:
                draw_figures(out)
    except KeyboardInterrupt:  # outside the runs (loading, tables, figures): no run is affected
        err_console.print(f"interrupted; {resume}", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    for run_id, why in outcome.lost.items():
        err_console.print(f"[red]lost[/] {run_id}: {escape(why)}", highlight=False)
    if outcome.lost:
        err_console.print(f"{len(outcome.lost)} run(s) lost their worker and are left "
                          f"incomplete; {resume}", highlight=False, soft_wrap=True)  # fmt: skip
    _print_failed(outcome)
    if outcome.failed or outcome.lost:
        raise typer.Exit(1)


def _print_failed(outcome: Outcome) -> None:
    from bnbench.ablate.runner import failed_earlier

    earlier = failed_earlier(outcome)
    now = [run_id for run_id in outcome.failed if run_id not in earlier]
    if now:
        err_console.print(f"[red]{len(now)} run(s) failed[/] (traceback.txt in each):")
        for run_id in now:
            err_console.print(f"  {run_id}: {escape(outcome.errors.get(run_id, ''))}")
    if earlier:
        runs = (f"{len(earlier)} runs failed earlier and are skipped" if len(earlier) != 1
                else "1 run failed earlier and is skipped")  # fmt: skip
        err_console.print(f"[red]{runs}[/]; rerun with --retry-failed to train them again:",
                          highlight=False)  # fmt: skip
        for run_id in earlier:
            err_console.print(f"  {run_id}: {escape(outcome.errors.get(run_id, ''))}")


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
              shard: str | None, save_models: bool, quiet: bool, sets: list[str],
              group_size: int) -> Outcome:  # fmt: skip
    """Load the ablation, say what will run, and run it behind the live display."""
    from bnbench.ablate.groups import check_group_size
    from bnbench.ablate.local_executor import available_cores
    from bnbench.ablate.progress import AblationProgress, QuietProgress
    from bnbench.ablate.runner import (
        check_destination,
        extension_of,
        parse_shard,
        plan_table,
        run_ablation,
        shard_runs,
    )
    from bnbench.config.ablation import load_ablation, selection_warning

    check_group_size(group_size)
    ablation = load_ablation(ablation_path, sets)
    check_destination(ablation, out)  # before saying what will run there
    extra = extension_of(ablation, out)
    if extra is not None:
        console.print(f"adds {extra} to the ablation in {out}; the runs there are kept",
                      markup=False, highlight=False)  # fmt: skip
    part = parse_shard(shard)
    selected = {run.run_id for run in shard_runs(ablation.runs, part)}
    states = [row["state"] for row in plan_table(ablation, out) if row["run_id"] in selected]
    finished = sum(rundir.is_done(state) for state in states)
    failed = states.count("failed") if not retry_failed else 0
    skipped = f", {failed} failed earlier (skipped; --retry-failed trains them)" if failed else ""
    local_jobs = options.jobs or available_cores()
    where = f"--jobs {local_jobs}" if options.name == "local" else f"on {options.name}"
    console.print(f"{ablation.spec.name}: {len(selected)} runs selected, {finished} already "
                  f"finished{skipped}, {where} → {out}")  # fmt: skip
    _print_sets(ablation)
    if (warning := selection_warning(ablation)) is not None:
        console.print(f"warning: {warning}", style="yellow", markup=False, highlight=False)
    slots = options.jobs or (local_jobs if options.name == "local" else max(1, len(selected)))
    display = (QuietProgress(err_console) if quiet
               else AblationProgress(console, len(selected), finished, slots))  # fmt: skip
    with display as listener:
        return run_ablation(ablation, out, retry_failed=retry_failed, shard=part,
                            save_model=save_models, listener=listener,
                            executor=options, group_size=group_size)  # fmt: skip


def _ablate_command(ablation_path: Path, out: Path, jobs: int | None, retry_failed: bool,
                    shard: str | None, save_models: bool, plots: bool, quiet: bool,
                    executor_words: list[str], sets: list[str],
                    group_size: int = 16) -> str:  # fmt: skip
    """The `bnbench ablate` command line with these options, to copy and paste."""
    import shlex

    words = ["bnbench", "ablate", str(ablation_path), "--out", str(out), *executor_words]
    for item in sets:
        words += ["--set", item]
    if jobs is not None and jobs != 1:
        words += ["--jobs", str(jobs)]
    if shard is not None:
        words += ["--shard", shard]
    if group_size != 16:
        words += ["--group-size", str(group_size)]
    flags = {"--retry-failed": retry_failed, "--save-models": save_models,
             "--no-plots": not plots, "--quiet": quiet}  # fmt: skip
    return shlex.join(words + [flag for flag, given in flags.items() if given])


@app.command()
@user_errors
def status(results_dir: ResultsDir) -> None:
    """Show each run of an ablation's results tree: done, failed, incomplete, or running (and
    by whom: host:pid, seconds since its last heartbeat); flags stale leases, whose runs the
    next `ablate` takes over. Reads the tree only."""
    from bnbench.ablate.status import counts, grid_status, holders

    rows = grid_status(results_dir)
    table = Table(title=f"{results_dir}: {len(rows)} runs")
    for column in ("run id", "arm", "grid cell", "seed", "state", "leased by", "heartbeat"):
        table.add_column(column, **_fit(column))
    colours = {"completed": "green", "diverged": "yellow", "failed": "red", "running": "cyan"}
    for row in rows:
        lease, state = row.lease, row.state
        shown = f"[{colours[state]}]{state}[/]" if state in colours else state
        by = lease.holder if lease is not None else ""
        age = f"{lease.age():.0f} s ago" if lease is not None else ""
        if row.stale is not None:
            age += f" [red](stale: {row.stale})[/]"
        table.add_row(escape(row.run_id), escape(row.arm), escape(row.cell or "-"), str(row.seed),
                      shown, escape(by), age)  # fmt: skip
    show(table, console)
    console.print(", ".join(f"{n} {state}" for state, n in counts(rows).items()))
    for holder, n in holders(rows).items():
        console.print(f"{holder}: {n} run{'s' if n != 1 else ''} running", highlight=False)
