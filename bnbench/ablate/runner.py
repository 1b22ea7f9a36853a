"""Running an expanded ablation: resume, shards, per-run leases, failures as data.

Runs train through an executor (`bnbench.ablate.executor`: worker processes here by default,
or a Ray cluster, or SLURM jobs); wherever it runs, a run is the same function writing the
same run directory. A run whose directory is complete is never run again; an incomplete one is
cleared and re-run.

Several invocations (shards, executors, machines) may fill one results tree at once: no lock
covers the tree, each run is leased before it trains (`bnbench.ablate.leases`). The first
invocation creates `ablation.yaml` and `manifest.json`; every later one checks that its
ablation equals the one there, so different ablations never mix; whichever finishes last
records the end time.

Ctrl-C is the parent's to handle (workers ignore SIGINT, which a terminal sends to the whole
process group): the first stops launching runs and lets the running ones finish; a second
terminates them. Either way an unfinished run is left incomplete, never failed, so the same
command resumes the grid.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bnbench.ablate import extend
from bnbench.ablate.executor import SLURM_DIR, Executor, ExecutorOptions, open_executor
from bnbench.ablate.groups import DEFAULT_GROUP_SIZE, check_group_size, units
from bnbench.ablate.interrupts import counting_ctrl_c
from bnbench.ablate.launch import Launcher, Listener, Outcome
from bnbench.ablate.leases import LEASES_DIR, Leases
from bnbench.config.ablation import SET_KEY, Ablation, PlannedRun
from bnbench.config.sets import set_options
from bnbench.errors import SpecError
from bnbench.results import files, rundir, tree_files
from bnbench.results.layout import ABLATION, MANIFEST, PLOTS_DIR, RUNS_DIR, run_path

__all__ = [
    "Listener",
    "Outcome",
    "check_destination",
    "check_out_folder",
    "destination_refusal",
    "failed_earlier",
    "parse_shard",
    "plan_table",
    "run_ablation",
    "shard_runs",
]

# Hidden entries of a results tree that are ours: leases, SLURM's job folder, an old lock file.
HIDDEN = frozenset({LEASES_DIR, SLURM_DIR, files.LOCK})
# A temporary file this old was left by a killed writer (a live one renames it within seconds).
STALE_TEMP_S = 3600.0


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' -> (i, n) with 1 <= i <= n; None -> (1, 1).

    Raises:
        SpecError: not of that form.
    """
    if text is None:
        return 1, 1
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise SpecError(f"--shard expects i/n such as 2/4, got {text!r}") from None
    if not 1 <= i <= n:
        raise SpecError(f"--shard {text}: need 1 <= i <= n")
    return i, n


def shard_runs(runs: list[PlannedRun], shard: tuple[int, int]) -> list[PlannedRun]:
    """The i-th of n deterministic slices: runs whose plan index is i-1 modulo n."""
    i, n = shard
    return [run for run in runs if run.index % n == i - 1]


def plan_table(ablation: Ablation, results_dir: Path | None) -> list[dict[str, Any]]:
    """One row per planned run with its state in `results_dir` (or 'missing')."""
    rows = []
    for run in ablation.runs:
        state = rundir.run_state(run_path(results_dir, run.run_id)) if results_dir else "missing"
        rows.append({"index": run.index, "run_id": run.run_id, "arm": run.arm,
                     "cell": run.cell, "seed": run.seed, "backend": run.spec.backend,
                     "state": state})  # fmt: skip
    return rows


def run_ablation(
    ablation: Ablation,
    results_dir: Path,
    *,
    jobs: int | None = None,
    retry_failed: bool = False,
    shard: tuple[int, int] = (1, 1),
    save_model: bool = False,
    listener: Listener | None = None,
    executor: ExecutorOptions | None = None,
    group_size: int = DEFAULT_GROUP_SIZE,
) -> Outcome:
    """Run the selected, unfinished runs of `ablation` into `results_dir`.

    Other invocations may work on `results_dir` at the same time: a run one of them is
    training is passed over (`Outcome.elsewhere`). A Ctrl-C (SIGINT) while runs are in flight
    does not raise: the first stops launching runs and waits for the running ones, a second
    terminates them; `Outcome.interrupted` says so.

    Args:
        ablation: the loaded, validated ablation.
        results_dir: the results tree; `runs/<run id>/` per run.
        jobs: runs at once (overrides `executor.jobs`); None lets the executor decide.
        retry_failed: also re-run runs recorded as failed.
        shard: (i, n) to run only the i-th of n slices.
        save_model: write each run's model.keras.
        listener: receives progress events.
        executor: where runs train (default: worker processes here).
        group_size: the most seeds of one arm and cell trained as one vectorized group on
            JAX (`bnbench.ablate.groups`), one unit of work for every executor (one worker
            process, Ray task or SLURM job); 1 trains every run alone.

    Raises:
        SpecError: the directory is a file, or holds something else or a different ablation
            (`check_destination`), a dataset of the runs to train is neither cached nor
            downloadable, the executor cannot start (in these three cases nothing is written),
            a run to clear is a symbolic link, or a local worker process died.
    """
    from bnbench.train.prepare import check_data, check_runs

    options = executor or ExecutorOptions()
    if jobs is not None:
        options = replace(options, jobs=jobs)
    options.check()
    check_group_size(group_size)
    check_destination(ablation, results_dir)  # before anything, so a refusal writes nothing
    selected = shard_runs(ablation.runs, shard)
    outcome = Outcome(total=len(selected))
    todo = _unfinished(selected, results_dir, retry_failed, outcome)
    # Once, here: data that no run could read would otherwise fail every run, one by one.
    check_data(run.spec for run in todo)
    check_runs((run.where, run.spec) for run in todo)  # what train would refuse, refused here
    engine = open_executor(options, results_dir)
    try:
        _write_top_level(ablation, results_dir)
        for folder in (results_dir, results_dir / PLOTS_DIR, results_dir / LEASES_DIR):
            files.remove_old_temp_files(folder, STALE_TEMP_S)
        with Leases(results_dir, options.name) as leases:
            _execute(todo, engine, leases, outcome, results_dir, save_model, retry_failed,
                     listener, group_size)  # fmt: skip
            others = leases.others({run.run_id for run in ablation.runs})
            outcome.elsewhere = {run_id: lease.holder for run_id, lease in others.items()}
    finally:
        engine.close()
    if not outcome.interrupted and not outcome.elsewhere:  # the last one out
        tree_files.mark_finished(results_dir)
    return outcome


def check_destination(ablation: Ablation, results_dir: Path) -> None:
    """Refuse a results directory that `run_ablation` must not write into; reads only.

    Raises:
        SpecError: `results_dir` (or a folder above it) is a file, or it holds a different
            ablation, this ablation with other `--set` values, or something other than an
            ablation.
    """
    check_out_folder(results_dir)
    refusal = destination_refusal(ablation, results_dir)
    if refusal is not None:
        raise SpecError(refusal)


def check_out_folder(results_dir: Path) -> None:
    """Refuse an --out that is a file, or lies below one; reads only.

    Raises:
        SpecError: as said, naming the file.
    """
    if results_dir.exists() and not results_dir.is_dir():
        raise SpecError(f"--out {results_dir} is a file, not a folder")
    files.refuse_links(results_dir, (RUNS_DIR, PLOTS_DIR, LEASES_DIR, SLURM_DIR, MANIFEST))
    for above in results_dir.parents:  # the nearest existing folder above must be one
        if above.exists():
            if not above.is_dir():
                raise SpecError(f"--out {results_dir}: {above} is a file, not a folder")
            break


def destination_refusal(ablation: Ablation, results_dir: Path) -> str | None:
    """Why `run_ablation` would refuse `results_dir` (a folder or nothing yet), or None.

    It refuses a folder holding a different ablation (or this one run with other `--set`
    values, or changed otherwise than by more seeds or grid values: `extend`), and a non-empty
    folder holding no ablation; reads only.
    """
    path = results_dir / ABLATION
    if path.exists():
        existing = tree_files.read_ablation(results_dir)
        same = existing.data == ablation.resolved
        if not same and extend.added(dict(existing.data), ablation.resolved) is None:
            return _difference(results_dir, existing, ablation.resolved)
    elif results_dir.is_dir() and any(
        name not in HIDDEN and not files.is_temp_name(name) for name in os.listdir(results_dir)
    ):
        return f"{results_dir}: is not empty and holds no ablation; choose another --out"
    return None


def _difference(
    results_dir: Path, existing: tree_files.StoredAblation, resolved: dict[str, Any]
) -> str:
    """Why the ablation in `results_dir` is not this one, and what to do."""
    if existing.name != resolved.get("name"):
        return (
            f"{results_dir}: holds a different ablation, {existing.name!r} (this one is "
            f"{resolved.get('name')!r}); choose another --out"
        )
    changed = existing.differs_in(resolved)
    given = tree_files.StoredAblation(resolved).sets
    if changed == [SET_KEY]:
        resume = f"give {_sets(existing.sets)}" if existing.sets else "leave out --set"
        return (
            f"{results_dir}: holds this ablation run with {_sets(existing.sets)}, and this "
            f"command gives {_sets(given)}: these are different runs, and a results tree holds "
            f"one ablation. To resume it, {resume}; or choose another --out"
        )
    sets = f"; it was run with {_sets(existing.sets)}" if existing.sets else ""
    return (
        f"{results_dir}: holds a different version of this ablation (it differs in: "
        f"{', '.join(changed)}{sets}); its runs would be summarized together with these. "
        "Only more seeds or more grid values can be added to a tree. Choose another --out, or "
        "delete the folder to start over"
    )


def _sets(sets: dict[str, Any]) -> str:
    """'--set a=1 --set b=x' as recorded in an ablation.yaml, or 'no --set'."""
    return set_options(sets) if sets else "no --set"


def failed_earlier(outcome: Outcome) -> list[str]:
    """Runs recorded as failed before this invocation, which it skipped (no `retry_failed`)."""
    skipped = set(outcome.skipped)
    return [run_id for run_id in outcome.failed if run_id in skipped]


def extension_of(ablation: Ablation, results_dir: Path) -> str | None:
    """What `ablation` adds to the one in `results_dir` ("seeds 2, 3"), or None; reads only."""
    path = results_dir / ABLATION
    stored = tree_files.read_ablation(results_dir) if path.is_file() else None
    extra = extend.added(dict(stored.data), ablation.resolved) if stored else None
    return extend.describe(extra) if extra else None


def _write_top_level(ablation: Ablation, results_dir: Path) -> None:
    """Create ablation.yaml and manifest.json unless another invocation did; check the former,
    and record more seeds or grid values (`extend`) given to an ablation already there."""
    from bnbench.results.environment import library_versions, machine

    if not tree_files.create_ablation(results_dir, ablation.resolved):
        check_destination(ablation, results_dir)  # another invocation's: the same ablation?
        extra = extend.added(dict(tree_files.read_ablation(results_dir).data), ablation.resolved)
        if extra is not None:
            extend.record(results_dir, ablation.resolved, extra, _plan(ablation))
    manifest = tree_files.Manifest(
        ablation=ablation.resolved["name"],
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
        finished_at=None,
        versions=library_versions(),
        machine=machine(),
        backends=sorted({run.spec.backend for run in ablation.runs}),
        runs=len(ablation.runs),
        plan=_plan(ablation),
    )
    tree_files.create_manifest(results_dir, manifest)


def _plan(ablation: Ablation) -> list[tree_files.PlannedRunRecord]:
    """The planned runs, so that `bnbench status` lists those not started yet."""
    return [tree_files.PlannedRunRecord(run_id=run.run_id, arm=run.arm, cell=run.cell,
                                        seed=run.seed) for run in ablation.runs]  # fmt: skip


def _unfinished(selected: list[PlannedRun], results_dir: Path, retry_failed: bool,
                outcome: Outcome) -> list[PlannedRun]:  # fmt: skip
    """The runs to (re-)run; the others are recorded as skipped. Reads only: a run's folder is
    cleared once it is leased."""
    todo = []
    for run in selected:
        state = rundir.run_state(run_path(results_dir, run.run_id))
        if rundir.is_done(state) or (state == "failed" and not retry_failed):
            outcome.skipped.append(run.run_id)
            outcome.statuses[run.run_id] = state
            if state == "failed":  # what it failed with, to say so again
                summary = rundir.read_summary(run_path(results_dir, run.run_id))
                outcome.errors[run.run_id] = (summary.error if summary else None) or "unknown"
        else:
            todo.append(run)
    return todo


def _execute(todo: list[PlannedRun], engine: Executor, leases: Leases, outcome: Outcome,
             results_dir: Path, save_model: bool, retry_failed: bool,
             listener: Listener | None, group_size: int) -> None:  # fmt: skip
    """Train `todo`, one backend after another, in units of work of up to `group_size` seeds."""
    if not todo:
        return
    with counting_ctrl_c() as ctrl_c:
        launcher = Launcher(results_dir, engine, leases, ctrl_c, outcome, listener, save_model,
                            retry_failed)  # fmt: skip
        for backend in sorted({run.spec.backend for run in todo}):
            runs = [run for run in todo if run.spec.backend == backend]
            group = units(runs, group_size, engine.slots)
            if ctrl_c.presses:
                break
            with engine.group(backend, len(group)):
                stopped = launcher.run(group)
            for run in stopped:  # their workers are gone: nothing can finish them now
                state = rundir.run_state(run_path(results_dir, run.run_id))
                if state == rundir.UNFINISHED:
                    rundir.mark_interrupted(run_path(results_dir, run.run_id))
                if state in (rundir.MISSING, rundir.UNFINISHED):
                    outcome.stopped_midway.append(run.run_id)
                else:  # it finished as it was stopped (a group's seeds finish one by one)
                    outcome.statuses[run.run_id] = state
                leases.release(run.run_id)
        outcome.interrupted = ctrl_c.presses > 0
