"""Terminal progress: a rich bar for one run, a live table for an ablation, and what a Ctrl-C
during an ablation is doing."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


class StepProgress:
    """Context manager yielding a progress hook `(step, total, loss) -> None`."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps  loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("train", total=None, loss="-")

    def __enter__(self) -> StepProgress:
        self._progress.start()
        return self

    def __call__(self, step: int, total: int, loss: float | None) -> None:
        shown = f"{loss:.4f}" if loss is not None else "-"
        self._progress.update(self._task, completed=step, total=total, loss=shown)

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
    """A live display of an ablation: runs done / running / total, each running run's step and
    loss, and the grid's ETA from the mean duration of finished runs."""

    def __init__(self, console: Console, total: int, skipped: int, jobs: int) -> None:
        from rich.live import Live

        self.console = console
        self.total = total
        self.done = skipped
        self.jobs = jobs
        self.failed = 0
        self.running: dict[str, tuple[int, int, float | None]] = {}
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
        elif event == "step":
            self.running[run_id] = (payload["step"], payload["total"], payload["loss"])
        elif event == "done":
            self.done += 1
            self.elsewhere.pop(run_id, None)
            self.failed += payload.get("status") == "failed"
            self.running.pop(run_id, None)
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
            shown = f"{step}/{total}" if total else "started"
            table.add_row(run_id, shown, f"{loss:.4f}" if loss is not None else "-")
        return table
