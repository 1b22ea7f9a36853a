"""What every command module shares: the Typer app, the consoles and the common arguments.

Nothing here imports Keras at module level, so `bnbench --help` is fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from bnbench import __version__
from bnbench.config.registries import Backend

if TYPE_CHECKING:
    from bnbench.config.schema import RunSpec

app = typer.Typer(
    help="Measure what Batch Normalization does: train YAML-specified Keras models, run "
    "paired-seed ablations, and draw their curves and BN diagnostics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # paragraphs rewrap; `code` shows as code
)
console = Console()
err_console = Console(stderr=True)


def _show_version(value: bool) -> None:
    if value:
        console.print(f"bnbench {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Measure what Batch Normalization does: train YAML-specified Keras models, run paired-seed
    ablations, and draw their curves and BN diagnostics."""


SpecPath = Annotated[Path, typer.Argument(help="A run spec (YAML).", show_default=False)]
# Not typer's own min=1: a bad value must be refused by the library's check, with its message.
GroupSizeOption = Annotated[
    int,
    typer.Option(
        help="On JAX, train up to this many seeds of one arm and grid cell as one vectorized "
        "program (one unit of work); 1 trains every run alone.",
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a spec value: dotted.key=value (repeatable)."),
]
BackendOption = Annotated[
    Backend | None, typer.Option("--backend", help="Override the spec's backend.")
]


def load_spec(spec_path: Path, overrides: list[str] | None, backend: str | None) -> RunSpec:
    from bnbench.config.loading import load_run_spec

    extra: list[str | tuple[str, Any]] = list(overrides or [])
    if backend is not None:
        extra.append(("backend", backend))
    return load_run_spec(spec_path, extra)


AblationPath = Annotated[Path, typer.Argument(help="An ablation spec (YAML).", show_default=False)]
ResultsDir = Annotated[Path, typer.Argument(help="A results directory.", show_default=False)]


def write_tables(results_dir: Path, latex: bool, columns: list[str] | None = None) -> None:
    """Rebuild and print the summary tables; `columns` picks the LaTeX table's columns."""
    from bnbench.analysis.tables import build_report, render_table
    from bnbench.cli.tables import show
    from bnbench.export.histories import write_histories

    result = build_report(results_dir, latex=latex, latex_columns=columns)
    write_histories(results_dir)
    show(render_table(result), console)
    console.print(f"tables written to {results_dir}: runs.csv, histories.csv, summary.csv, "
                  f"summary.md, summary.json{', summary.tex' if latex else ''}")  # fmt: skip


def draw_figures(results_dir: Path, fmt: str | None = None, log_loss: bool | None = None) -> None:
    """Draw the figures of `results_dir`.

    Args:
        results_dir: A results tree.
        fmt: png, svg or pdf; None: the format the figures were last drawn in (kept in
            plots/figures.json), else png.
        log_loss: Losses on a log axis; None: as last drawn, else linear.
    """
    from bnbench.analysis.plots import render_plots

    paths = render_plots(results_dir, fmt=fmt, log_loss=log_loss)
    noun = "figure" if len(paths) == 1 else "figures"
    drawn = f" ({paths[0].suffix.lstrip('.')})" if paths else ""
    console.print(f"{len(paths)} {noun}{drawn} written to {results_dir / 'plots'} (see index.md)")
