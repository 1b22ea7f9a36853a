"""Where figures are made and saved: the one place that picks matplotlib's backend.

Figures are drawn off-screen (Agg) and saved atomically, so a re-render killed mid-write never
leaves a truncated image behind.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # off-screen: bnbench runs on servers and in CI, never opens a window
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from bnbench.config.registries import FIGURE_FORMATS
from bnbench.errors import SpecError
from bnbench.results.files import atomic_write_bytes

__all__ = ["DPI", "FIGURE_FORMATS", "check_format", "plt", "save_figure"]

DPI = 130


def check_format(fmt: str) -> str:
    """Return `fmt` when it is a figure format bnbench writes.

    Raises:
        SpecError: it is not.
    """
    if fmt not in FIGURE_FORMATS:
        raise SpecError(
            f"unknown figure format {fmt!r}: expected one of {', '.join(FIGURE_FORMATS)}"
        )
    return fmt


def save_figure(fig: Figure, path: Path, fmt: str, dpi: int = DPI) -> None:
    """Render `fig` to `path` in `fmt` (temporary file + rename), then close it."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=fmt, dpi=dpi)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
