"""Training the seeds of one run as one vectorized JAX program (README: Many seeds at once).

Runs that differ only in their seed have identical shapes, so on JAX they train side by side:
`train_group` prepares every seed exactly as `train` would (its own initial weights, batch order
and dropout RNG state), stacks their states and trains them with `jax.vmap` over Keras' own
training step (`bnbench.train.vectorized_step`). Each seed still writes its own run directory,
with the same files, columns and summary fields as a run trained alone; the summary's
`vectorized` says which path trained it and `vectorized_reason` why.

What is not vectorized makes the whole group train seed by seed (`fallback_reason`): another
backend, diagnostics, recalibrated BN statistics, the shift evaluation.

A failure is recorded where it belongs. An error while recording, evaluating the divergence of,
or writing one seed's results (its history, model, summary) is that seed's: it is recorded as
that seed's failure, the seed stops updating (masked, as a diverged one), and the others go on.
An error of what the seeds share (preparing the group, the compiled program, an evaluation of
every seed at once) fails every seed not finished yet, with a `GroupProgramError` that names the
seeds that shared the program.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bnbench.config.backend_policy import choose_backend
from bnbench.config.identity import config_hash
from bnbench.config.schema import RunSpec
from bnbench.results import rundir
from bnbench.results.files import out_of_space
from bnbench.train.loop import RunResult, _as_trained, _Loop, _save_model
from bnbench.train.monitor import ProgressHook
from bnbench.train.prepare import PhaseHook, prepare
from bnbench.train.schedule import resolved_config


def fallback_reason(specs: Sequence[RunSpec]) -> str | None:
    """Why these runs cannot train as one vectorized group, or None when they can.

    Reads the specs only (nothing is imported or built).
    """
    if len(specs) < 2:
        return "a group of one seed"
    first = specs[0]
    backend = choose_backend(first)
    if backend != "jax":
        return f"backend {backend}: only JAX trains seeds as one program"
    if first.diagnostics.enabled:
        return "diagnostics are not vectorized"
    if first.evaluation.bn_statistics == "recalibrated":
        return "recalibrated BN statistics are not vectorized"
    if first.evaluation.shift is not None:
        return "the shift evaluation is not vectorized"
    shared = _without_seed(first)
    if any(_without_seed(spec) != shared for spec in specs[1:]):
        return "the runs differ in more than their seed"
    if len({spec.seed for spec in specs}) < len(specs):
        return "two runs have the same seed"
    return None


class GroupProgramError(RuntimeError):
    """What a vectorized group of seeds shares failed, so each seed not finished failed with it.

    Args:
        seeds: The seeds of the group (every one shared the program).
        error: The error of the shared program.
    """

    def __init__(self, seeds: Sequence[int], error: BaseException) -> None:
        listed = ", ".join(str(seed) for seed in seeds)
        super().__init__(f"the program shared by a vectorized group of {len(seeds)} seeds "
                         f"(seeds {listed}) failed: {type(error).__name__}: {error}")  # fmt: skip
        self.seeds = tuple(seeds)


def _without_seed(spec: RunSpec) -> dict[str, object]:
    data = spec.model_dump(mode="json")
    data.pop("seed")
    return data


def train_group(
    specs: Sequence[RunSpec],
    run_dirs: Sequence[Path],
    *,
    save_model: bool = True,
    progress: Sequence[ProgressHook | None] | None = None,
    phase: PhaseHook | None = None,
    evaluated_at_most: int | None = None,
) -> list[RunResult]:
    """Train runs that differ only in their seed as one vectorized program.

    Args:
        specs: the runs' specs; `fallback_reason(specs)` must be None.
        run_dirs: one directory per run, as `train` takes it.
        save_model: also write each run's `model.keras`.
        progress: one hook per run, called after each chunk with (step, total_steps, loss).
        phase: called as each set-up phase of the first run begins.
        evaluated_at_most: as `train`'s: the runtime probe's shortcut.

    Returns:
        One result per run, in order; each 'completed', 'diverged', or 'failed' (an error of
        that seed's own results, recorded in its directory; the others went on).

    Raises:
        ValueError: the runs cannot train as one group (`fallback_reason`).
        SpecError: a spec cannot be trained; nothing is written then.
        KeyboardInterrupt: re-raised after marking every unfinished directory incomplete.
        OSError: the disk or quota is full (`files.out_of_space`); the unfinished directories
            are left incomplete, to be trained again, never recorded as failed.
        GroupProgramError: what the seeds share failed (from the error); recorded on every
            unfinished run, naming the seeds.
    """
    reason = fallback_reason(specs)
    if reason is not None:
        raise ValueError(f"these runs cannot train as one group: {reason}")
    preps = [prepare(spec, phase=phase if i == 0 else None, evaluated_at_most=evaluated_at_most)
             for i, spec in enumerate(specs)]  # fmt: skip
    hooks = list(progress) if progress is not None else [None] * len(specs)
    loops = []
    for prep, run_dir, hook in zip(preps, run_dirs, hooks, strict=True):
        resolved = _as_trained(resolved_config(prep.spec), prep)
        rundir.begin(run_dir, resolved)
        loop = _Loop(prep, run_dir, config_hash(resolved), hook, True)
        loop.vectorized, loop.vectorized_reason = True, f"group of {len(specs)} seeds"
        loops.append(loop)
    results: dict[int, RunResult] = {}  # by seed position, as each seed finishes
    try:
        _Group(loops, results).run(save_model)
        return [results[i] for i in range(len(loops))]
    except KeyboardInterrupt:
        for i, loop in enumerate(loops):
            if i not in results:
                rundir.mark_interrupted(loop.run_dir)
        raise
    except Exception as err:
        if out_of_space(err):  # not the runs' fault: left incomplete, as `train` leaves one
            raise
        shared = GroupProgramError([spec.seed for spec in specs], err)
        for i, loop in enumerate(loops):
            if i not in results:
                rundir.record_failure(loop.run_dir, shared, loop.summary())
        raise shared from err


class _Group:
    """The loop of `train`, once for every seed: each `_Loop` keeps its own seed's record."""

    def __init__(self, loops: list[_Loop], results: dict[int, RunResult]) -> None:
        from bnbench.train.vectorized_step import GroupEngine

        self.loops = loops
        self.results = results  # each seed's, once it has finished or failed
        first = loops[0].prep
        self.schedule, self.data = first.schedule, first.data
        self.names = ["loss", *first.metric_names]
        self.eval_batch = max(256, self.schedule.batch_size)
        evaluator = loops[0].evaluator
        wrapper = evaluator._train_mode_model() if evaluator.bn_layers else None
        orders = np.stack([loop.prep.order for loop in loops])
        self.engine = GroupEngine([loop.prep.model for loop in loops], self.data.x_train,
                                  self.data.y_train, orders, self.schedule.batch_size,
                                  wrapper)  # fmt: skip
        self.seeds = len(loops)

    def run(self, save_model: bool) -> None:
        """Train every seed to its end (or divergence, or its own failure); record each seed's
        result in `results`."""
        plan, data, loops, engine = self.schedule, self.data, self.loops, self.engine
        start = time.perf_counter()
        first = np.stack([loop.prep.order[: plan.batch_size] for loop in loops])
        initial = engine.evaluate(data.x_train[first], data.y_train[first], plan.batch_size,
                                  train_mode=True, per_seed=True)  # fmt: skip
        self._share("evaluation", start)
        for i, loop in enumerate(loops):
            loop.initial_loss = float(initial["loss"][i])
        alive = np.ones(self.seeds, dtype=bool)
        step = 0
        for stop in loops[0].stops():
            start = time.perf_counter()
            after, bad, logs = engine.fit(step, stop, alive)
            self._fitted(start, step, stop)
            for i in map(int, np.flatnonzero(alive)):
                self._pool(loops[i], int(bad[i]), step, stop, {k: float(logs[k][i])
                                                               for k in self.names})  # fmt: skip
            alive = after.copy()
            step = stop
            if stop in plan.eval_steps and alive.any():
                start = time.perf_counter()
                values = self._split(data.x_val, data.y_val, "val")
                self._share("evaluation", start)
                for i in map(int, np.flatnonzero(alive)):
                    alive[i] = bool(self._alone(i, self._record, loops[i], stop, values[i]))
            if not alive.any():
                break
        self._finish(save_model)

    def _alone(self, i: int, work: Callable[..., object], *args: Any) -> object:
        """Do `work(*args)`, which concerns seed `i` alone; an error there is that seed's
        failure: recorded in its directory and its results, and None is returned (the seed
        stops)."""
        try:
            return work(*args)
        except Exception as err:
            if out_of_space(err):  # the disk's, not the seed's: every seed stops
                raise
            loop = self.loops[i]
            rundir.record_failure(loop.run_dir, err, loop.summary())
            summary = rundir.read_summary(loop.run_dir)
            assert summary is not None  # just written
            self.results[i] = RunResult(loop.run_dir, summary, loop.history)
            return None

    def _fitted(self, start: float, step: int, stop: int) -> None:
        """Each seed's share of the chunk's time (the group's time over its seeds)."""
        seconds = (time.perf_counter() - start) / self.seeds
        for loop in self.loops:
            loop.seconds["fit"] += seconds
            loop.chunk_times.append(seconds / max(1, stop - step))
            if loop.chunk_times[:-1]:  # the first chunk holds the compilation: not steady
                loop.steady = (loop.steady[0] + stop - step, loop.steady[1] + seconds)

    def _share(self, name: str, start: float) -> None:
        seconds = (time.perf_counter() - start) / self.seeds
        for loop in self.loops:
            loop.seconds[name] += seconds

    def _pool(self, loop: _Loop, bad: int, step: int, stop: int, logs: dict[str, float]) -> None:
        """Pool one seed's chunk into its train loss and metrics, or record its divergence."""
        if bad >= 0:  # as `train` does: the step is counted, the chunk is not pooled
            loop.monitor.step = loop.monitor.diverged_at = bad
            loop.diverged_reason = "non-finite training loss"
            return
        loop.monitor.step = stop
        for key in self.names:
            loop.since_eval[key] = loop.since_eval.get(key, 0.0) + logs[key] * (stop - step)
        loop.steps_since_eval += stop - step

    def _record(self, loop: _Loop, step: int, split: dict[str, float]) -> bool:
        """Record one seed's evaluation point; False when it diverged there."""
        values = {f"train_{k}": loop.since_eval[k] / loop.steps_since_eval for k in self.names}
        ok = loop.record(step, values | split)
        if loop.progress is not None:
            loop.progress(step, self.schedule.total_steps, values["train_loss"])
        return ok

    def _split(self, x: np.ndarray, y: np.ndarray, prefix: str) -> list[dict[str, float]]:
        """Every seed's evaluations of one split, keyed as `_Loop._split` keys them."""
        engine = self.engine
        moving = engine.evaluate(x, y, self.eval_batch)
        views = {"": moving}
        if "train_mode" in self.loops[0].views:
            if self.engine._wrapper is None:  # without BN, training and inference mode agree
                views["train_mode_"] = moving
            else:
                batch = self.schedule.batch_size
                usable = len(x) if len(x) < batch else len(x) // batch * batch
                views["train_mode_"] = engine.evaluate(x[:usable], y[:usable],
                                                       min(batch, usable), train_mode=True)
        return [{f"{prefix}_{view}{name}": float(result[name][i]) for view, result in views.items()
                 for name in self.names} for i in range(self.seeds)]  # fmt: skip

    def _finish(self, save_model: bool) -> None:
        """Test every seed that did not diverge or fail, save, and write each summary."""
        start = time.perf_counter()
        tested = [i not in self.results and loop.monitor.diverged_at is None
                  for i, loop in enumerate(self.loops)]  # fmt: skip
        tests = self._split(self.data.x_test, self.data.y_test, "test") if any(tested) \
            else [{}] * self.seeds  # fmt: skip
        self._share("evaluation", start)
        for i in range(self.seeds):
            if i not in self.results:
                self._alone(i, self._write, i, tests[i] if tested[i] else None, save_model)

    def _write(self, i: int, test: dict[str, float] | None, save_model: bool) -> None:
        """Write seed `i`'s model and summary; `test` None: it diverged (nothing tested)."""
        loop = self.loops[i]
        run = loop.prep
        final = {} if test is None else dict(test)
        if loop.history:
            last = loop.history[-1].values
            final.update({k: float(v) for k, v in last.items() if k.startswith("val_")})
        else:
            rundir.write_history(loop.run_dir, [], run.metric_names, loop.views)
        if loop.progress is not None:
            last_loss = loop.history[-1].values["train_loss"] if loop.history else None
            loop.progress(loop.monitor.step, run.schedule.total_steps, last_loss)
        with loop._timed("writing"):
            if save_model and test is not None:
                self.engine.assign(i, run.model)
                _save_model(run.model, loop.run_dir / rundir.MODEL)
        summary = loop.summary("completed" if test is not None else "diverged", final)
        rundir.finish(loop.run_dir, summary)
        self.results[i] = RunResult(loop.run_dir, summary, loop.history)
