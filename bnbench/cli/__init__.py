"""The `bnbench` command line: parse, call one library function, print.

One module per group of commands, all registering on the app of `common`: `run` (validate,
train, datasets), `grid` (plan, ablate, status), `analysis` (report, plot, landscape), `export`,
and `claims` (list, run, report the claims about BN). Nothing here imports Keras at module level,
so `bnbench --help` is fast. User errors (`SpecError`) become a message on stderr and exit code 2.
"""

from __future__ import annotations

# Importing a command module registers its commands; the order here is the order of --help.
# isort: off
from bnbench.cli import run, grid, analysis, export  # noqa: F401

# isort: on
from bnbench.cli.claims import claims_app
from bnbench.cli.common import app

app.add_typer(claims_app, name="claims")  # list | run | report

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    from bnbench.train.backend import quiet_environment

    quiet_environment()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
