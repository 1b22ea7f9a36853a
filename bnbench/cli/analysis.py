"""Commands that read a results tree or draw: `report`, `plot`, `landscape`."""

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
    latex: Annotated[bool, typer.Option(help="Also write summary.tex.")] = False,
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
    write_tables(results_dir, latex=latex)
    if html:
        from bnbench.export.html_report import write_html_report

        console.print(f"wrote {write_html_report(results_dir, spec=spec)}")


@app.command()
@user_errors
def plot(
    results_dir: ResultsDir,
    format: Annotated[FigureFormat, typer.Option("--format", help="Image format.")] = "png",
    log_loss: Annotated[bool, typer.Option(help="Loss on a log axis.")] = False,
) -> None:
    """Draw learning curves, sensitivity plots and BN diagnostics from a results directory."""
    draw_figures(results_dir, format, log_loss=log_loss)


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
    from bnbench.analysis.landscape import draw_landscape

    result = draw_landscape(out, num_samples=num_samples, seed=seed, steps=steps)
    for line in result.describe():
        console.print(line, highlight=False)
    console.print(f"wrote {result.path}")
