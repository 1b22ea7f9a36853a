"""Running an expanded ablation: worker processes, resume, shards, a lock, failures as data.

Each run trains in a worker process (spawned, so a crash or `kill -9` of one run cannot corrupt
another); a worker serves one Keras backend and is capped at its share of the CPU threads. A run
whose directory is complete is never run again; an incomplete one is cleared and re-run.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import queue
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnbench.config.ablation import Ablation, PlannedRun
from bnbench.errors import SpecError
from bnbench.results import rundir
from bnbench.results.files import read_mapping, write_json, write_yaml
from bnbench.results.layout import ABLATION, MANIFEST, run_path

LOCK = ".lock"

# (event, payload) -> None: 'start' / 'step' / 'done' events for the live display.
Listener = Callable[[str, dict[str, Any]], None]


@dataclass
class Outcome:
    """What happened to the selected runs of one `ablate` invocation."""

    total: int
    skipped: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [run_id for run_id, status in self.statuses.items() if status == "failed"]


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


@contextmanager
def results_lock(results_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the results directory; released even on `kill -9`.

    Raises:
        SpecError: another process holds it.
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / LOCK
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise SpecError(
            f"{results_dir}: another bnbench ablate is running on this directory "
            f"(pid {owner}); wait for it or choose another --out"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _init_worker(backend: str, threads: int, events: Any) -> None:
    from bnbench.train.backend import activate, limit_threads

    limit_threads(threads)
    activate(backend)
    global _EVENTS
    _EVENTS = events


_EVENTS: Any = None


def _run_one(run_id: str, spec_data: dict[str, Any], entry: dict[str, Any], run_dir: str,
             save_model: bool) -> tuple[str, str, str | None]:  # fmt: skip
    """Train one run in a worker; never raises (a failure is recorded in its directory)."""
    from bnbench.config.schema import RunSpec
    from bnbench.train.loop import train

    path = Path(run_dir)
    rundir.write_entry(path, entry)

    def progress(step: int, total: int, loss: float | None) -> None:
        if _EVENTS is not None:
            _EVENTS.put(("step", {"run_id": run_id, "step": step, "total": total, "loss": loss}))

    try:
        result = train(RunSpec.model_validate(spec_data), path, save_model=save_model,
                       progress=progress)  # fmt: skip
        return run_id, result.status, None
    except Exception as err:  # recorded by train(); the grid carries on
        if rundir.run_state(path) != "failed":  # it failed before training started
            rundir.record_failure(path, err, brief=True)
        return run_id, "failed", f"{type(err).__name__}: {err}"


def run_ablation(
    ablation: Ablation,
    results_dir: Path,
    *,
    jobs: int = 1,
    retry_failed: bool = False,
    shard: tuple[int, int] = (1, 1),
    save_model: bool = False,
    listener: Listener | None = None,
) -> Outcome:
    """Run the selected, unfinished runs of `ablation` into `results_dir`.

    Args:
        ablation: the loaded, validated ablation.
        results_dir: the results tree; `runs/<run id>/` per run.
        jobs: runs at once, each in its own worker process.
        retry_failed: also re-run runs recorded as failed.
        shard: (i, n) to run only the i-th of n slices.
        save_model: write each run's model.keras.
        listener: receives progress events.

    Raises:
        SpecError: the directory is locked, or holds a different ablation.
    """
    if jobs < 1:
        raise SpecError(f"--jobs must be at least 1, got {jobs}")
    with results_lock(results_dir):
        _write_top_level(ablation, results_dir)
        selected = shard_runs(ablation.runs, shard)
        outcome = Outcome(total=len(selected))
        todo = []
        for run in selected:
            run_dir = run_path(results_dir, run.run_id)
            state = rundir.run_state(run_dir)
            if rundir.is_done(state) or (state == "failed" and not retry_failed):
                outcome.skipped.append(run.run_id)
                outcome.statuses[run.run_id] = state
                continue
            if run_dir.exists():
                shutil.rmtree(run_dir)  # incomplete (or failed, being retried): start clean
            todo.append(run)
        _execute(todo, results_dir, jobs, save_model, outcome, listener)
        manifest = read_mapping(results_dir / MANIFEST)
        manifest["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        write_json(results_dir / MANIFEST, manifest)
    return outcome


def _write_top_level(ablation: Ablation, results_dir: Path) -> None:
    from bnbench.results.environment import library_versions, machine

    path = results_dir / ABLATION
    if path.exists():
        existing = read_mapping(path)
        if existing != ablation.resolved:
            keys = set(existing) | set(ablation.resolved)
            changed = sorted(k for k in keys if existing.get(k) != ablation.resolved.get(k))
            raise SpecError(
                f"{results_dir}: holds a different version of this ablation (it differs in: "
                f"{', '.join(changed)}); its runs would be summarized together with these. "
                "Choose another --out, or delete the folder to start over"
            )
    elif any(entry.name != LOCK for entry in results_dir.iterdir()):
        raise SpecError(f"{results_dir}: is not empty and holds no ablation; choose another --out")
    write_yaml(path, ablation.resolved)
    write_json(results_dir / MANIFEST, {
        "ablation": ablation.resolved["name"],
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "finished_at": None,
        "versions": library_versions(),
        "machine": machine(),
        "backends": sorted({run.spec.backend for run in ablation.runs}),
        "runs": len(ablation.runs),
    })  # fmt: skip


def _execute(todo: list[PlannedRun], results_dir: Path, jobs: int, save_model: bool,
             outcome: Outcome, listener: Listener | None) -> None:  # fmt: skip
    if not todo:
        return
    context = multiprocessing.get_context("spawn")
    manager = context.Manager()
    events = manager.Queue()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    try:
        for backend in sorted({run.spec.backend for run in todo}):
            group = [run for run in todo if run.spec.backend == backend]
            with ProcessPoolExecutor(max_workers=min(jobs, len(group)), mp_context=context,
                                     initializer=_init_worker,
                                     initargs=(backend, threads, events)) as pool:  # fmt: skip
                futures: dict[Future[Any], PlannedRun] = {}
                for run in group:
                    future = pool.submit(
                        _run_one,
                        run.run_id,
                        run.spec.model_dump(mode="json"),
                        run.entry(),
                        str(run_path(results_dir, run.run_id)),
                        save_model,
                    )
                    futures[future] = run
                    if listener:
                        listener("queued", {"run_id": run.run_id})
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    _drain(events, listener)
                    for future in done:
                        try:
                            run_id, status, error = future.result()
                        except BrokenProcessPool:
                            raise SpecError(
                                f"a worker process died while running {futures[future].run_id} "
                                "(out of memory?); its directory is marked incomplete: re-run "
                                "the same command to resume"
                            ) from None
                        outcome.statuses[run_id] = status
                        if error:
                            outcome.errors[run_id] = error
                        if listener:
                            listener("done", {"run_id": run_id, "status": status})
    finally:
        manager.shutdown()


def _drain(events: Any, listener: Listener | None) -> None:
    while True:
        try:
            kind, payload = events.get_nowait()
        except (queue.Empty, EOFError, OSError):
            return
        if listener:
            listener(kind, payload)
