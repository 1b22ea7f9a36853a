"""Commands that read results or draw: `report`, `plot`, `compare`, `landscape`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bnbench.cli.common import ResultsDir, app, console, draw_figures, write_tables
from bnbench.config.registries import FigureFormat
from bnbench.errors import SpecError, user_errors


@app.command()
@user_errors
def report(
    results_dir: ResultsDir,
    latex: Annotated[
        bool,
        typer.Option(
            help="Also write summary.tex: a booktabs table (caption, label) of arm, cell, test "
            "score, steps to target, runs that reached it and the paired difference."
        ),
    ] = False,
    columns: Annotated[
        str | None,
        typer.Option(
            help="With --latex: the table's columns, comma-separated, from the summary's "
            "columns (e.g. arm,cell,score,diff,p); an unknown one lists them all. The row "
            "labels are always kept: arm first and, with a grid, cell after it, when left out."
        ),
    ] = None,
    html: Annotated[
        bool, typer.Option(help="Also write report.html: one self-contained page of it all.")
    ] = False,
    spec: Annotated[
        Path | None,
        typer.Option(
            help="With --html: the ablation file, whose header (the question) heads "
            "the page; the results tree keeps only the resolved spec."
        ),
    ] = None,
) -> None:
    """Rebuild runs.csv, histories.csv and the summary tables from the stored runs alone.

    With --html, also report.html: the question, tables, figures, notes, failed runs and versions
    on one page that opens offline."""
    if spec is not None and not html:
        raise SpecError("--spec is used only with --html")
    if columns is not None and not latex:
        raise SpecError("--columns is used only with --latex")
    picked = None if columns is None else [c.strip() for c in columns.split(",")]
    if spec is not None:  # before any table is written: a wrong --spec changes nothing
        from bnbench.export.html_report import read_question

        read_question(results_dir, spec)
    write_tables(results_dir, latex=latex, columns=picked)
    if html:
        from bnbench.export.html_report import write_html_report

        console.print(f"wrote {write_html_report(results_dir, spec=spec)}")


@app.command()
@user_errors
def plot(
    results_dir: ResultsDir,
    format: Annotated[
        FigureFormat | None,
        typer.Option(
            "--format",
            help="Image format (default: the one the figures were last drawn in, else png).",
            show_default=False,
        ),
    ] = None,
    log_loss: Annotated[
        bool | None,
        typer.Option(
            "--log-loss/--linear-loss",
            help="Loss on a log axis (default: as last drawn, else linear).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Draw learning curves, sensitivity plots and BN diagnostics from a results directory.

    DIR is an ablation's results tree or one run directory (its figures go to DIR/plots/); a
    `bnbench compare` folder is refused: `compare ... --out DIR` redraws it. The options are
    remembered in DIR/plots/figures.json: a later `plot` or `ablate` redraws with them unless
    given others; plots/index.md states them."""
    draw_figures(results_dir, format, log_loss=log_loss)


@app.command()
@user_errors
def compare(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(help="Run directories of `bnbench train`, two or more.", show_default=False),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Also write compare.json, runs.csv, summary.csv, summary.md and plots/ here: a "
            "new or empty folder, or an earlier compare output. Without it nothing is written."
        ),
    ] = None,
    format: Annotated[
        FigureFormat | None,
        typer.Option(
            "--format",
            help="With --out: image format (default: as last drawn in --out, else png).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Compare separately trained runs: group them by the config keys in which they differ (never
    the seed), then mean ± std, steps to target and paired differences per group.

    The backend is the one that ran (an ablation records `jax` where `train` records `auto`);
    `diagnostics.*` keys never group, as recording does not change training (the notes list
    them). The reference group is the first run's. Failed and unfinished runs are counted and named,
    never averaged; runs of different datasets, metrics or targets are refused."""
    from bnbench.analysis.compare import compare_runs
    from bnbench.analysis.tables import render_table
    from bnbench.cli.tables import show

    result = compare_runs(run_dirs, out=out, fmt=format)
    show(render_table(result.report), console)
    if out is not None:
        console.print(f"{len(result.paths)} files written to {out} (compare.json lists them)")


@app.command()
@user_errors
def landscape(
    out: Annotated[Path, typer.Option(help="Figure file.")] = Path("results/landscape.png"),
    steps: Annotated[int, typer.Option(help="Gradient-descent steps on each surface.")] = 100,
    num_samples: Annotated[int, typer.Option(help="Examples of two_scale.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the data.")] = 0,
) -> None:
    """Draw the loss surface of a linear model on two_scale with raw vs standardized features:
    why unequal feature scales make a narrow valley and slow gradient descent."""
    from bnbench.demos.landscape import draw_landscape

    result = draw_landscape(out, num_samples=num_samples, seed=seed, steps=steps)
    for line in result.describe():
        console.print(line, highlight=False)
    console.print(f"wrote {result.path}")
