"""Terminal progress for one run: a rich bar with step, loss and ETA."""

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
        self._live = Live(self._render(), console=console, refresh_per_second=4, transient=True)

    def __enter__(self) -> AblationProgress:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        run_id = payload.get("run_id", "")
        if event == "step":
            if run_id not in self.started:
                self.started[run_id] = time.monotonic()
            self.running[run_id] = (payload["step"], payload["total"], payload["loss"])
        elif event == "done":
            self.done += 1
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
        remaining = self.total - self.done
        eta = "-"
        if self.durations and remaining:
            seconds = sum(self.durations) / len(self.durations) * remaining / self.jobs
            eta = time.strftime("%H:%M:%S", time.gmtime(seconds))
        table = Table(title=f"ablation: {self.done}/{self.total} done, {len(self.running)} "
                      f"running, {self.failed} failed, ETA {eta}", show_edge=False)  # fmt: skip
        table.add_column("running run")
        table.add_column("step", justify="right")
        table.add_column("loss", justify="right")
        for run_id, (step, total, loss) in sorted(self.running.items()):
            table.add_row(run_id, f"{step}/{total}", f"{loss:.4f}" if loss is not None else "-")
        return table
