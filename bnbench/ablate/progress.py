"""Terminal progress: one run's set-up phases and then its steps, a live table for an ablation,
and what a Ctrl-C during an ablation is doing."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table
from rich.text import Text

from bnbench.train.prepare import PHASES, Phase


class _Doing(ProgressColumn):
    """What the run is doing: its set-up phase and the seconds in it, then 'training'."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))

    def render(self, task: Task) -> Text:
        phase = task.fields["phase"]
        if phase is None:
            return Text("training", style="bold")
        seconds = time.monotonic() - task.fields["since"]
        return Text(f"{PHASES[phase]}… {seconds:.1f} s", style="bold")


class _Steps(ProgressColumn):
    """Steps, loss and ETA once training has begun; nothing before (no '0/?')."""

    def __init__(self) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self._remaining = TimeRemainingColumn()

    def render(self, task: Task) -> Text:
        if task.fields["phase"] is not None or task.total is None:
            return Text("")
        steps = f"{int(task.completed)}/{int(task.total)} steps  loss {task.fields['loss']}  eta "
        return Text(steps) + self._remaining.render(task)


class StepProgress:
    """Context manager for one run's progress: each set-up phase as it happens (with its
    seconds), then a bar of steps, loss and ETA.

    Called as the training's progress hook `(step, total, loss)`; `phase` is its phase hook
    (`bnbench.train.prepare.PhaseHook`). When the first step arrives, one line says where the
    set-up time went.
    """

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            _Doing(),
            BarColumn(bar_width=30),
            _Steps(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("train", total=None, loss="-", phase=None, since=0.0)
        self._phases: dict[Phase, float] = {}  # seconds of each phase, once it has ended
        self._current: tuple[Phase, float] | None = None

    def __enter__(self) -> StepProgress:
        self._progress.start()
        return self

    def phase(self, phase: Phase) -> None:
        """`phase` begins (and the previous one ends)."""
        now = time.monotonic()
        self._end_phase(now)
        self._current = (phase, now)
        self._progress.update(self._task, phase=phase, since=now)

    def __call__(self, step: int, total: int, loss: float | None) -> None:
        if self._current is not None:
            self._end_phase(time.monotonic())
            self._progress.console.print(self.setup_line(), highlight=False)
        shown = f"{loss:.4f}" if loss is not None else "-"
        self._progress.update(self._task, completed=step, total=total, loss=shown, phase=None)

    def setup_line(self) -> str:
        """Where the time before the first step went: 'set-up 5.1 s: importing Keras 3.9 s, …'."""
        parts = ", ".join(
            f"{PHASES[name]} {seconds:.1f} s" for name, seconds in self._phases.items()
        )
        return f"set-up {sum(self._phases.values()):.1f} s: {parts}"

    def _end_phase(self, now: float) -> None:
        if self._current is not None:
            name, since = self._current
            self._phases[name] = self._phases.get(name, 0.0) + now - since
            self._current = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()


def stopping_message(running: int, now: bool) -> str:
    """What an ablation is doing after a Ctrl-C, with `running` runs still running."""
    runs = f"{running} running run{'s' if running != 1 else ''}"
    if now:
        return f"stopping now: terminating {runs}; they are left incomplete"
    them = "them" if running != 1 else "it"
    return f"stopping: waiting for {runs}; Ctrl-C again to stop {them} now"


class QuietProgress:
    """No live display; only says what a Ctrl-C is doing, so that a second one is a choice."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __enter__(self) -> QuietProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        if event == "stopping":
            self.console.print(stopping_message(payload["running"], payload["now"]))


class AblationProgress:
    """A live display of an ablation: runs done / running / total, each running run's set-up
    phase or step and loss, and the grid's ETA from the mean duration of finished runs."""

    def __init__(self, console: Console, total: int, skipped: int, jobs: int) -> None:
        from rich.live import Live

        self.console = console
        self.total = total
        self.done = skipped
        self.jobs = jobs
        self.failed = 0
        self.running: dict[str, tuple[int, int, float | None]] = {}
        self.phases: dict[str, Phase] = {}  # what each running run does before its first step
        self.started: dict[str, float] = {}
        self.durations: list[float] = []
        self.stopping: str | None = None  # what a Ctrl-C is doing
        self.elsewhere: dict[str, str] = {}  # runs another process is training: its host:pid
        self._live = Live(self._render(), console=console, refresh_per_second=4, transient=True)

    def __enter__(self) -> AblationProgress:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        run_id = payload.get("run_id", "")
        if event == "start":
            self.running[run_id] = (0, 0, None)
            self.started[run_id] = time.monotonic()
            self.elsewhere.pop(run_id, None)
        elif event == "elsewhere":
            self.elsewhere[run_id] = payload["holder"]
        elif event == "stopping":
            self.stopping = stopping_message(payload["running"], payload["now"])
        elif event == "phase":
            self.phases[run_id] = payload["phase"]
        elif event == "step":
            self.running[run_id] = (payload["step"], payload["total"], payload["loss"])
            self.phases.pop(run_id, None)
        elif event == "done":
            self.done += 1
            self.elsewhere.pop(run_id, None)
            self.failed += payload.get("status") == "failed"
            self.running.pop(run_id, None)
            self.phases.pop(run_id, None)
            if run_id in self.started:
                self.durations.append(time.monotonic() - self.started.pop(run_id))
            mark = {"completed": "[green]✓", "diverged": "[yellow]↯"}.get(
                payload["status"], "[red]✗"
            )
            self.console.print(f"{mark}[/] {run_id}  {payload['status']}", highlight=False)
        self._live.update(self._render())

    def _render(self) -> Table:
        remaining = self.total - self.done - len(self.elsewhere)
        eta = "-"
        if self.durations and remaining:
            seconds = sum(self.durations) / len(self.durations) * remaining / self.jobs
            eta = time.strftime("%H:%M:%S", time.gmtime(seconds))
        elsewhere = f", {len(self.elsewhere)} elsewhere" if self.elsewhere else ""
        table = Table(title=f"ablation: {self.done}/{self.total} done, {len(self.running)} "
                      f"running{elsewhere}, {self.failed} failed, ETA {eta}", show_edge=False,
                      caption=self.stopping, caption_style="bold yellow")  # fmt: skip
        table.add_column("running run")
        table.add_column("step", justify="right")
        table.add_column("loss", justify="right")
        for run_id, (step, total, loss) in sorted(self.running.items()):
            phase = self.phases.get(run_id)
            shown = f"{step}/{total}" if total else PHASES[phase] if phase else "started"
            table.add_row(run_id, shown, f"{loss:.4f}" if loss is not None else "-")
        return table
