"""The one exception type that means "the user gave us something wrong".

The CLI turns it into a message and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar


class SpecError(ValueError):
    """A spec, override or command-line value that cannot be used, with a message for the user."""


F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn a `SpecError` (or an `OSError` on a path) into one message and exit code 2.

    For command functions; rich and typer are imported only when an error is reported, so that
    importing this module stays cheap for every layer.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SpecError as err:
            _exit_with(str(err))
        except OSError as err:  # an --out that cannot be created or written, say
            where = f"{err.filename}: " if err.filename else ""
            _exit_with(f"{where}{err.strerror or err}")

    return wrapper  # type: ignore[return-value]


def _exit_with(message: str) -> NoReturn:
    import typer
    from rich.console import Console
    from rich.markup import escape

    # Escaped: a message may quote brackets, e.g. pip install "bnbench[mlflow]".
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False,
                               soft_wrap=True)  # fmt: skip
    raise typer.Exit(2) from None
