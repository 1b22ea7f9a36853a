"""claims.html: the claims report as one self-contained page (figures inlined), to open offline."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bnbench.claims.render import (
    ClaimReport,
    header,
    p_column,
    p_text,
    rows,
    sequential_text,
    statistic_text,
)

if TYPE_CHECKING:
    from bnbench.analysis.multiplicity import Correction

_STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:4px 6px}"
    ".supported{color:#1a7f37}.not-supported{color:#b42318}.inconclusive{color:#8a6d00}"
    "img{max-width:100%}"
)


# How every claims.html bnbench writes begins; a file that does not is not ours to rewrite.
SIGNATURE = "<!doctype html><meta charset='utf-8'><title>bnbench claims</title>"


def written_by_bnbench(path: Path) -> bool:
    """Whether `path` is a claims.html that bnbench wrote (a plain file, not a link, that
    begins with `SIGNATURE`)."""
    if path.is_symlink() or not path.is_file():
        return False
    with open(path, "rb") as handle:
        return handle.read(len(SIGNATURE)) == SIGNATURE.encode("utf-8")


def render_html(reports: list[ClaimReport], out: Path,
                sequential: Mapping[str, Any] | None = None,
                correction: Correction = "holm") -> str:  # fmt: skip
    """The page: the verdict table, then each claim's findings, sentences and figure
    (`sequential`, `correction`: as `bnbench.claims.render.markdown`'s)."""
    e = html.escape
    head = ["claim", "finding", "verdict", "statistic [CI]", "method", p_column(correction),
            "stability", "inconclusive:", "n seeds", "budget"]
    keys = ["claim", "finding", "verdict", "statistic", "method", "p", "stability",
            "rules_out", "n", "budget"]
    body = [f"<tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>"]
    for row in rows(reports):
        cls = row["verdict"].removesuffix(" (unstable)").replace(" ", "-")
        cells = "".join(
            f"<td class='{cls}'><b>{e(row[k])}</b></td>"
            if k == "verdict"
            else f"<td>{e(row[k])}</td>"
            for k in keys
        )
        body.append(f"<tr>{cells}</tr>")
    parts = [f"{SIGNATURE}<style>{_STYLE}</style><h1>Claims about batch normalization, tested</h1>",
             f"<p>{e(header(reports, correction))}</p>",
             f"<p>{e(sequential_text(sequential, correction))}</p>" if sequential else "",
             f"<table>{''.join(body)}</table>"]  # fmt: skip
    for report in reports:
        claim = report.claim
        parts.append(f"<h2>{e(claim.id)}: {e(claim.statement)}</h2><p>Source: {e(claim.source)}. "
                     f"Measured: {e(claim.measures)}. Budget: {e(report.budget)} "
                     f"({report.mode}).</p><ul>")  # fmt: skip
        for found, judged in zip(report.assessment.findings, report.judgements, strict=True):
            cls = judged.verdict.removesuffix(" (unstable)").replace(" ", "-")
            parts.append(f"<li>{e(found.label)} <b class='{cls}'>{e(judged.verdict)}</b>: "
                         f"{e(found.statistic)} = {e(statistic_text(found))} over "
                         f"{found.interval.n} seeds; p {e(p_text(judged))} ({judged.method}); "
                         f"{judged.stability}. {e(judged.absence(found.digits))} "
                         f"Rule: {e(found.rule)}.</li>")  # fmt: skip
        parts.append(f"</ul><p>{e(' '.join(report.assessment.sentences))}</p>")
        if report.figure and (out / report.figure).is_file():
            data = base64.b64encode((out / report.figure).read_bytes()).decode("ascii")
            parts.append(f"<img alt='{e(claim.id)}' src='data:image/png;base64,{data}'>")
    return "\n".join(parts) + "\n"
