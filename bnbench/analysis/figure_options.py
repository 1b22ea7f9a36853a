"""How the figures of a results tree are drawn, remembered beside them in `plots/figures.json`.

`bnbench plot DIR --format svg` records its choices there; a later re-render (`bnbench plot DIR`
or `ablate` after a resume) reads them back, so the figures keep the format and style they were
last drawn in instead of silently switching back to the defaults. `plots/index.md` states them.

figures.json is a JSON object with the fields of `FigureOptions`, e.g.
`{"format": "svg", "log_loss": false, "band": "std", "select_by": "final"}`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from bnbench.analysis.figures import check_format
from bnbench.errors import SpecError
from bnbench.results.files import read_mapping
from bnbench.results.rows import Selection, validation_score

BANDS = ("std", "minmax")
# In plots/: the options the figures there were last drawn with (`FigureOptions`, as JSON).
OPTIONS_FILE = "figures.json"


@dataclass(frozen=True)
class FigureOptions:
    """How figures are drawn.

    Attributes:
        format: png, svg or pdf.
        log_loss: Losses on a log axis.
        band: Band around the seed mean: "std" (± one standard deviation) or "minmax".
        select_by: Which mean validation score picks each arm's best grid cell: "final" (at the
            end of training, where the test score is read) or "best" (over training).
    """

    format: str = "png"
    log_loss: bool = False
    band: str = "std"
    select_by: Selection = "final"

    def check(self, where: str = "") -> FigureOptions:
        """Return the options when every one is known.

        Args:
            where: The file they were read from, named in the message.

        Raises:
            SpecError: one is not.
        """
        source = f"{where}: " if where else ""
        try:
            check_format(self.format)
            if self.band not in BANDS:
                raise SpecError(f"unknown band {self.band!r}: expected one of {', '.join(BANDS)}")
            validation_score(None, self.select_by)
            if not isinstance(self.log_loss, bool):
                raise SpecError(f"log_loss must be true or false, got {self.log_loss!r}")
        except SpecError as error:
            raise SpecError(f"{source}{error}") from None
        return self

    def describe(self) -> str:
        """In words, for index.md: "svg; losses on a linear axis; ± 1 std bands over seeds; ..."."""
        axis = "log" if self.log_loss else "linear"
        band = "± 1 std" if self.band == "std" else "min–max"
        return (
            f"{self.format}; losses on a {axis} axis; {band} bands over seeds; best cells by the "
            f"mean {self.select_by} validation score"
        )

    def record(self) -> dict[str, Any]:
        """The content of figures.json."""
        return asdict(self)


def remembered_options(plots_dir: Path) -> FigureOptions | None:
    """The options the figures in `plots_dir` were last drawn with; None if never recorded.

    Raises:
        SpecError: figures.json cannot be parsed or holds an unknown key or value; the message
            names the file.
    """
    path = plots_dir / OPTIONS_FILE
    data = read_mapping(path)
    if not data:
        return None
    known = [f.name for f in fields(FigureOptions)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise SpecError(
            f"{path}: unknown option(s) {', '.join(unknown)}; expected {', '.join(known)}"
        )
    return FigureOptions(**data).check(str(path))


def choose_options(plots_dir: Path, **given: Any) -> FigureOptions:
    """The options to draw with: each one given (not None), else the remembered one, else default.

    Args:
        plots_dir: The folder of the figures (its figures.json is read).
        **given: Fields of `FigureOptions`; None leaves the field to memory or the default.

    Raises:
        SpecError: a given option or figures.json is unusable; the given ones are checked first,
            and figures.json is not read when every option is given.
    """
    chosen = {key: value for key, value in given.items() if value is not None}
    FigureOptions(**chosen).check()
    if len(chosen) == len(fields(FigureOptions)):  # nothing left to memory: not even read
        return FigureOptions(**chosen)
    base = remembered_options(plots_dir) or FigureOptions()
    return FigureOptions(**{**base.record(), **chosen})
