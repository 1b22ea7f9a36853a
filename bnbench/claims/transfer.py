"""Claims transfer: one table of each finding's verdict and effect size across claims folders
(e.g. the digits suite and the MNIST-1D one), marking where the verdicts agree.

It reads each folder's `claims.json` (written by `bnbench claims run` / `claims report`), so it
never trains, draws or writes into the folders it compares.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bnbench.errors import SpecError
from bnbench.results.files import read_mapping

JSON = "claims.json"


@dataclass(frozen=True)
class Cell:
    """One finding on one dataset: its verdict and estimate (None when not in that folder)."""

    verdict: str
    estimate: float | None


@dataclass(frozen=True)
class Row:
    """One finding across the folders, in the order given."""

    claim: str
    finding: str
    cells: list[Cell | None]

    @property
    def agreement(self) -> str:
        """ "yes" when every folder has the finding with one verdict, "no" when verdicts differ,
        "-" when a folder lacks it."""
        if any(cell is None for cell in self.cells):
            return "-"
        return "yes" if len({cell.verdict for cell in self.cells if cell}) == 1 else "no"


def read_folders(folders: list[Path]) -> tuple[list[str], list[Row]]:
    """The folders' names (what each column is called) and one row per finding.

    Raises:
        SpecError: fewer than two folders, a folder without claims.json (saying how to write
            it), or a claims.json that is not a claims report.
    """
    if len(folders) < 2:
        raise SpecError("a transfer table needs two or more claims folders")
    reports = [_claims(folder) for folder in folders]
    names = [_name(folder, report) for folder, report in zip(folders, reports, strict=True)]
    keys: list[tuple[str, str]] = []
    found: list[dict[tuple[str, str], Cell]] = []
    for report in reports:
        cells = {}
        for claim in report["claims"]:
            for item in claim["findings"]:
                key = (str(claim["id"]), str(item["label"]))
                cells[key] = Cell(str(item["verdict"]), item["estimate"])
                if key not in keys:
                    keys.append(key)
        found.append(cells)
    return names, [Row(c, f, [cells.get((c, f)) for cells in found]) for c, f in keys]


def _claims(folder: Path) -> dict[str, Any]:
    path = folder / JSON
    if not path.is_file():
        raise SpecError(f"{folder}: has no {JSON}; write it with `bnbench claims report {folder}`")
    data = read_mapping(path)
    if not isinstance(data.get("claims"), list):
        raise SpecError(f"{path}: is not a claims report (no 'claims' list)")
    return data


def _name(folder: Path, report: dict[str, Any]) -> str:
    """The folder's name, with what it was retargeted onto (e.g. "claims_mnist1d (--dataset
    mnist1d)")."""
    onto = (report.get("retarget") or {}).get("onto")
    return f"{folder.name} ({onto})" if onto else folder.name


def shown(cell: Cell | None, digits: int = 3) -> str:
    """E.g. "supported (2.31)"; "not run" for a finding the folder lacks."""
    if cell is None:
        return "not run"
    if cell.estimate is None:
        return cell.verdict
    return f"{cell.verdict} ({cell.estimate:.{digits}g})"


def markdown(names: list[str], rows: list[Row]) -> str:
    """The table as Markdown: claim, finding, one column per folder, and whether they agree."""
    head = ["claim", "finding", *names, "agree"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.claim, row.finding or "-", *map(shown, row.cells), row.agreement]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
