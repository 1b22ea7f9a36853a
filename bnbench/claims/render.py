"""Rendering the claims report: the verdict table and the per-claim sections, as text.

Shared by claims.md, claims.html and the terminal table, so they never disagree about a number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bnbench.claims.claim import Assessment, Claim, Finding
from bnbench.claims.plan import Mode
from bnbench.claims.verdicts import MIN_SEEDS

if TYPE_CHECKING:
    from bnbench.analysis.multiplicity import Correction
    from bnbench.claims.judging import Judgement


@dataclass(frozen=True)
class ClaimReport:
    """One claim's part of the report."""

    claim: Claim
    mode: Mode
    assessment: Assessment
    budget: str
    figure: str | None  # relative to the results directory
    seeds: tuple[int, ...] = ()
    judgements: tuple[Judgement, ...] = ()  # one per finding, once judged as a family


def statistic_text(found: Finding) -> str:
    """E.g. "2.31 [1.85, 2.90]", "≥ 2.31 [1.85, ∞)" with lower bounds among the values."""
    i, d = found.interval, found.digits
    if i.estimate is None:
        return "n/a (no seeds with a value)"
    prefix = "≥ " if "lower" in i.bounds else "≤ " if "upper" in i.bounds else ""
    low = "(−∞" if math.isinf(i.low) else f"[{i.low:.{d}f}"
    high = "∞)" if math.isinf(i.high) else f"{i.high:.{d}f}]"
    return f"{prefix}{i.estimate:.{d}f} {low}, {high}"


def p_text(judgement: Judgement) -> str:
    """E.g. "0.004 → 0.088" (raw → adjusted), "-" without a test."""
    if judgement.p_value is None:
        return "-"
    raw, fixed = f"{judgement.p_value:.3f}", judgement.p_adjusted
    return f"{raw} → {fixed:.3f}" if fixed is not None else raw


def p_column(correction: Correction = "holm") -> str:
    """The p column's name, e.g. "p (raw → Holm)"."""
    from bnbench.claims.judging import NAMES

    return f"p (raw → {NAMES[correction]})"


def rows(reports: list[ClaimReport]) -> list[dict[str, str]]:
    """The verdict table: one row per finding."""
    out = []
    for report in reports:
        claim = report.claim
        budget = f"{report.budget} ({report.mode})"
        if not report.assessment.findings:
            out.append({"claim": claim.id, "finding": "", "source": claim.source,
                        "verdict": "not run", "statistic": "", "method": "", "p": "",
                        "stability": "", "rules_out": "", "n": "0", "budget": budget})  # fmt: skip
        for found, judged in zip(report.assessment.findings, report.judgements, strict=True):
            out.append({"claim": claim.id, "finding": found.label, "source": claim.source,
                        "verdict": judged.verdict, "statistic": statistic_text(found),
                        "method": judged.method, "p": p_text(judged),
                        "stability": judged.stability, "rules_out": judged.absence(found.digits),
                        "n": str(found.interval.n), "budget": budget})  # fmt: skip
    return out


def header(reports: list[ClaimReport], correction: Correction = "holm") -> str:
    """The paragraph above the table: how verdicts are reached, the correction, the seeds."""
    from bnbench.claims.judging import correction_text
    from bnbench.claims.plan import seed_text

    seeds = sorted({s for r in reports for s in r.seeds})
    return (
        "Each finding's statistic is computed per seed (the runs of a seed share initial weights "
        "and batch order); its 95% interval (90% for equivalence tests) comes from the method of "
        "its kind (t for continuous values, the exact sign-flip test for grid-valued or tied "
        "ones, the sign test for censored ones) and is held against a threshold declared in "
        f"code before any run (`bnbench/claims/`). Fewer than {MIN_SEEDS} seeds with a value: "
        "inconclusive. ≥ / ≤: some runs never reached the target, so the value is a bound. "
        f"Multiplicity: p-values are adjusted by {correction_text(correction)} over the "
        f"{sum(len(r.judgements) for r in reports)} findings of this report (p: raw → "
        "adjusted); a decided finding whose adjusted p is not below 0.05 is inconclusive. "
        "Stability: the rule re-applied to disjoint halves of the seeds (alternate seeds), or "
        "to the seeds less one each time (leave-one-out) where a half is too small for the "
        "finding's test to decide (an exact test needs 6 seeds); a decided finding whose "
        "parts disagree is marked (unstable). An inconclusive finding "
        "says whether its interval rules out effects larger than the claim's smallest effect "
        "of interest (\"no effect larger than\") or was too wide to (\"not enough seeds\"). "
        f"Seeds: {seed_text(seeds) if seeds else 'none'}."
    )


def sequential_text(record: Mapping[str, Any] | None, correction: Correction = "holm"
                    ) -> str:  # fmt: skip
    """The paragraph on `claims run --until-decided` (`bnbench.claims.adaptive`): how the
    findings with looks were decided, in place of the report's `correction`; "" for a run
    without."""
    from bnbench.claims.judging import NAMES
    if record is None:
        return ""
    return (
        f"Adaptive seeding (--until-decided, up to {record['max_seeds']} seeds): a finding with "
        f"looks is decided by {record['correction_text']}, over {record['hypotheses']} "
        f"one-sided hypotheses (2 per finding), family-wise error {record['alpha']:g} over all "
        f"findings and looks. That decision replaces its interval's verdict and the "
        f"{NAMES[correction]} adjustment of its p-value: an interval of data gathered until it "
        "cleared is not a 95% interval."
    )


def markdown(reports: list[ClaimReport], sequential: Mapping[str, Any] | None = None,
             correction: Correction = "holm") -> str:  # fmt: skip
    """claims.md: the verdict table, then a section per claim (`sequential`: the record of
    `--until-decided`, `bnbench.claims.adaptive.sequential_record`; `correction`: the one
    the p-values were adjusted by)."""
    lines = [
        "# Claims about batch normalization, tested",
        "",
        header(reports, correction),
        *(["", sequential_text(sequential, correction)] if sequential else []),
        "",
        f"| claim | finding | verdict | statistic [CI] | method | {p_column(correction)} "
        "| stability "
        "| inconclusive: | n seeds | budget |",
        "|---|---|---|--:|---|--:|---|---|--:|---|",
    ]
    for row in rows(reports):
        verdict = f"**{row['verdict']}**"
        lines.append(f"| {row['claim']} | {row['finding']} | {verdict} | {row['statistic']} | "
                     f"{row['method']} | {row['p']} | {row['stability']} | {row['rules_out']} | "
                     f"{row['n']} | {row['budget']} |")  # fmt: skip
    for report in reports:
        claim = report.claim
        lines += ["", f"## {claim.id}: {claim.statement}", "",
                  f"Source: {claim.source}. Measured: {claim.measures}. "
                  f"Budget: {report.budget} ({report.mode}).", ""]  # fmt: skip
        for found, judged in zip(report.assessment.findings, report.judgements, strict=True):
            label = f"{found.label}: " if found.label else ""
            p = f", p = {p_text(judged)} ({judged.method})" if judged.p_value is not None else ""
            absence = f" {judged.absence(found.digits).capitalize()}." if judged.rules_out else ""
            lines.append(f"- {label}**{judged.verdict}**. {found.statistic} = "
                         f"{statistic_text(found)} over {found.interval.n} seeds{p}; "
                         f"{judged.stability}.{absence} Rule: {found.rule}.")  # fmt: skip
        if report.assessment.sentences:
            lines += ["", " ".join(report.assessment.sentences)]
        if report.figure:
            lines += ["", f"![{claim.id}]({report.figure})"]
    return "\n".join(lines) + "\n"
