"""Terminal progress for one run: a rich bar with step, loss and ETA."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


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
