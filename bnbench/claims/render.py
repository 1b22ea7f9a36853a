"""Rendering the claims report: the verdict table and the per-claim sections, as text.

Shared by claims.md, claims.html and the terminal table, so they never disagree about a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bnbench.claims.claim import Assessment, Claim, Finding
from bnbench.claims.plan import Mode
from bnbench.claims.verdicts import MIN_SEEDS


@dataclass(frozen=True)
class ClaimReport:
    """One claim's part of the report."""

    claim: Claim
    mode: Mode
    assessment: Assessment
    budget: str
    figure: str | None  # relative to the results directory


def statistic_text(found: Finding) -> str:
    """E.g. "2.31 [1.85, 2.90]", "≥ 2.31 [1.85, ∞)" with lower bounds among the values."""
    i, d = found.interval, found.digits
    if i.estimate is None:
        return "n/a (no seeds with a value)"
    prefix = "≥ " if "lower" in i.bounds else "≤ " if "upper" in i.bounds else ""
    low = "(−∞" if math.isinf(i.low) else f"[{i.low:.{d}f}"
    high = "∞)" if math.isinf(i.high) else f"{i.high:.{d}f}]"
    return f"{prefix}{i.estimate:.{d}f} {low}, {high}"


def rows(reports: list[ClaimReport]) -> list[dict[str, str]]:
    """The verdict table: one row per finding."""
    out = []
    for report in reports:
        claim = report.claim
        budget = f"{report.budget} ({report.mode})"
        if not report.assessment.findings:
            out.append(
                {
                    "claim": claim.id,
                    "finding": "",
                    "source": claim.source,
                    "verdict": "not run",
                    "statistic": "",
                    "n": "0",
                    "budget": budget,
                }
            )
        for found in report.assessment.findings:
            out.append({"claim": claim.id, "finding": found.label, "source": claim.source,
                        "verdict": found.verdict, "statistic": statistic_text(found),
                        "n": str(found.interval.n), "budget": budget})  # fmt: skip
    return out


def markdown(reports: list[ClaimReport]) -> str:
    """claims.md: the verdict table, then a section per claim."""
    lines = [
        "# Claims about batch normalization, tested",
        "",
        "Each finding's statistic is computed per seed (the runs of a seed share initial weights "
        "and batch order); the interval is a 95% t interval over seeds (90% for equivalence "
        "tests) and is held against a threshold declared in code before any run "
        f"(`bnbench/claims/`). Fewer than {MIN_SEEDS} seeds with a value: inconclusive. "
        "≥ / ≤: some runs never reached the target, so the value is a bound.",
        "",
        "| claim | finding | source | verdict | statistic [CI] | n seeds | budget |",
        "|---|---|---|---|--:|--:|---|",
    ]
    for row in rows(reports):
        verdict = f"**{row['verdict']}**"
        lines.append(f"| {row['claim']} | {row['finding']} | {row['source']} | {verdict} | "
                     f"{row['statistic']} | {row['n']} | {row['budget']} |")  # fmt: skip
    for report in reports:
        claim = report.claim
        lines += ["", f"## {claim.id}: {claim.statement}", "",
                  f"Source: {claim.source}. Measured: {claim.measures}. "
                  f"Budget: {report.budget} ({report.mode}).", ""]  # fmt: skip
        for found in report.assessment.findings:
            label = f"{found.label}: " if found.label else ""
            p = f", p = {found.p_value:.3f}" if found.p_value is not None else ""
            lines.append(f"- {label}**{found.verdict}**. {found.statistic} = "
                         f"{statistic_text(found)} over {found.interval.n} seeds{p}. "
                         f"Rule: {found.rule}.")  # fmt: skip
        if report.assessment.sentences:
            lines += ["", " ".join(report.assessment.sentences)]
        if report.figure:
            lines += ["", f"![{claim.id}]({report.figure})"]
    return "\n".join(lines) + "\n"
