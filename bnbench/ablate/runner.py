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

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from bnbench.ablate.executor import SLURM_DIR, Executor, ExecutorOptions, open_executor
from bnbench.ablate.groups import DEFAULT_GROUP_SIZE, Unit, check_group_size, units
from bnbench.ablate.interrupts import counting_ctrl_c
from bnbench.ablate.launch import Launcher, Listener, Outcome
from bnbench.ablate.leases import LEASES_DIR, Leases
from bnbench.config.ablation import SET_KEY, Ablation, PlannedRun
from bnbench.config.identity import jsonable
from bnbench.config.sets import set_options
from bnbench.errors import SpecError
from bnbench.results import files, rundir
from bnbench.results.files import read_mapping, write_json
from bnbench.results.layout import ABLATION, MANIFEST, PLOTS_DIR, run_path

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
            JAX (`bnbench.ablate.groups`); 1 trains every run alone. The local executor only:
            Ray and SLURM train every run alone.

    Raises:
        SpecError: the directory is a file, or holds something else or a different ablation
            (`check_destination`), a dataset of the runs to train is neither cached nor
            downloadable, the executor cannot start (in these three cases nothing is written),
            a run to clear is a symbolic link, or a local worker process died.
    """
    from bnbench.train.prepare import check_data

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
    engine = open_executor(options, results_dir)
    try:
        _write_top_level(ablation, results_dir)
        for folder in (results_dir, results_dir / PLOTS_DIR, results_dir / LEASES_DIR):
            files.remove_old_temp_files(folder, STALE_TEMP_S)
        with Leases(results_dir, options.name) as leases:
            _execute(todo, engine, leases, outcome, results_dir, save_model, retry_failed,
                     listener, group_size if options.name == "local" else None)  # fmt: skip
            others = leases.others({run.run_id for run in ablation.runs})
            outcome.elsewhere = {run_id: lease.holder for run_id, lease in others.items()}
    finally:
        engine.close()
    if not outcome.interrupted and not outcome.elsewhere:  # the last one out
        manifest = read_mapping(results_dir / MANIFEST)
        manifest["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        write_json(results_dir / MANIFEST, manifest)
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
    for above in results_dir.parents:  # the nearest existing folder above must be one
        if above.exists():
            if not above.is_dir():
                raise SpecError(f"--out {results_dir}: {above} is a file, not a folder")
            break


def destination_refusal(ablation: Ablation, results_dir: Path) -> str | None:
    """Why `run_ablation` would refuse `results_dir` (a folder or nothing yet), or None.

    It refuses a folder holding a different ablation (or this one run with other `--set`
    values), and a non-empty folder holding no ablation; reads only.
    """
    path = results_dir / ABLATION
    if path.exists():
        existing = read_mapping(path)
        if existing != ablation.resolved:
            return _difference(results_dir, existing, ablation.resolved)
    elif results_dir.is_dir() and any(
        name not in HIDDEN and not files.is_temp_name(name) for name in os.listdir(results_dir)
    ):
        return f"{results_dir}: is not empty and holds no ablation; choose another --out"
    return None


def _difference(results_dir: Path, existing: dict[str, Any], resolved: dict[str, Any]) -> str:
    """Why the ablation in `results_dir` is not this one, and what to do."""
    keys = set(existing) | set(resolved)
    changed = sorted(k for k in keys if existing.get(k) != resolved.get(k))
    if changed == [SET_KEY]:
        resume = f"give {_sets(existing)}" if existing.get(SET_KEY) else "leave out --set"
        return (
            f"{results_dir}: holds this ablation run with {_sets(existing)}, and this command "
            f"gives {_sets(resolved)}: these are different runs, and a results tree holds one "
            f"ablation. To resume it, {resume}; or choose another --out"
        )
    sets = f"; it was run with {_sets(existing)}" if existing.get(SET_KEY) else ""
    return (
        f"{results_dir}: holds a different version of this ablation (it differs in: "
        f"{', '.join(changed)}{sets}); its runs would be summarized together with these. "
        "Choose another --out, or delete the folder to start over"
    )


def _sets(resolved: dict[str, Any]) -> str:
    """'--set a=1 --set b=x' as recorded in an ablation.yaml, or 'no --set'."""
    sets = resolved.get(SET_KEY)
    return set_options(sets) if isinstance(sets, dict) and sets else "no --set"


def failed_earlier(outcome: Outcome) -> list[str]:
    """Runs recorded as failed before this invocation, which it skipped (no `retry_failed`)."""
    skipped = set(outcome.skipped)
    return [run_id for run_id in outcome.failed if run_id in skipped]


def _write_top_level(ablation: Ablation, results_dir: Path) -> None:
    """Create ablation.yaml and manifest.json unless another invocation did; check the former."""
    from bnbench.results.environment import library_versions, machine

    text = yaml.safe_dump(ablation.resolved, sort_keys=False)
    if not files.create_exclusive(results_dir / ABLATION, text.encode("utf-8")):
        check_destination(ablation, results_dir)  # another invocation's: the same ablation?
    manifest = {
        "ablation": ablation.resolved["name"],
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "finished_at": None,
        "versions": library_versions(),
        "machine": machine(),
        "backends": sorted({run.spec.backend for run in ablation.runs}),
        "runs": len(ablation.runs),
        # The planned runs, so that `bnbench status` lists those not started yet.
        "plan": [
            {"run_id": run.run_id, "arm": run.arm, "cell": run.cell, "seed": run.seed}
            for run in ablation.runs
        ],
    }
    text = json.dumps(manifest, indent=2, default=jsonable) + "\n"
    files.create_exclusive(results_dir / MANIFEST, text.encode("utf-8"))


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
             listener: Listener | None, group_size: int | None) -> None:  # fmt: skip
    """Train `todo`, one backend after another; `group_size` None: every run alone (Ray and
    SLURM keep one run per unit of work)."""
    if not todo:
        return
    with counting_ctrl_c() as ctrl_c:
        launcher = Launcher(results_dir, engine, leases, ctrl_c, outcome, listener, save_model,
                            retry_failed)  # fmt: skip
        for backend in sorted({run.spec.backend for run in todo}):
            runs = [run for run in todo if run.spec.backend == backend]
            group = (units(runs, group_size, engine.slots) if group_size is not None else
                     [Unit((run,), "this executor trains one run per unit") for run in runs])
            if ctrl_c.presses:
                break
            with engine.group(backend, len(group)):
                stopped = launcher.run(group)
            for run in stopped:  # their workers are gone: nothing can finish them now
                _leave_incomplete(run_path(results_dir, run.run_id))
                leases.release(run.run_id)
            outcome.stopped_midway += [run.run_id for run in stopped]
        outcome.interrupted = ctrl_c.presses > 0


def _leave_incomplete(run_dir: Path) -> None:
    if rundir.run_state(run_dir) == rundir.UNFINISHED:  # it may have finished as it was stopped
        rundir.mark_interrupted(run_dir)
