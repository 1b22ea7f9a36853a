"""The claims report: every claim's verdicts, numbers and figure, from the results tree alone.

`write_claims_report` reads `OUT/<id>/` of every claim that has run (each file of its run
directories once), applies the claim's verdict rule, draws its figure into
`OUT/figures/<id>.png` and writes `claims.md` and `claims.json` (and `claims.html` on request,
or when an earlier request left one: it is kept current, never left describing older results
than its neighbours): only those. It never trains; re-running it after editing or adding runs
re-renders everything.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from bnbench.analysis.multiplicity import CORRECTIONS, Correction
from bnbench.claims.adaptive import sequential_decisions, sequential_record
from bnbench.claims.claim import Assessment, Finding
from bnbench.claims.evidence import load_evidence
from bnbench.claims.judging import ALPHA, CORRECTION, Judgement, correction_text, judge
from bnbench.claims.plan import CONFIGS, claim_mode
from bnbench.claims.registry import CLAIMS
from bnbench.claims.render import ClaimReport, markdown
from bnbench.errors import SpecError
from bnbench.results.files import atomic_write_text, write_json
from bnbench.results.layout import ABLATION, RUNS_DIR
from bnbench.results.tree_files import read_ablation

FIGURES = "figures"
MARKDOWN, JSON, HTML = "claims.md", "claims.json", "claims.html"


def assess_claims(out: Path, configs: Path = CONFIGS, correction: Correction = CORRECTION
                  ) -> list[ClaimReport]:  # fmt: skip
    """Assess every claim with a folder in `out`, in registry order, and draw its figure;
    the findings' p-values are adjusted by `correction`.

    Raises:
        SpecError: `out` does not exist, is a file, an ablation's tree or one claim's folder,
            or holds no claim folder; or a file in one cannot be read.
    """
    from bnbench.analysis.figures import save_figure
    from bnbench.claims.retarget import read_record

    retargeted = read_record(out)  # its budget, as retargeted by `claims run --dataset/--base`
    found = [c for c in CLAIMS.values() if (out / c.id / ABLATION).is_file()]
    if not found:
        raise SpecError(_not_claims(out))
    reports = []
    for claim in found:
        folder = out / claim.id
        stored = read_ablation(folder)
        mode = claim_mode(claim, stored, configs)
        if mode == "changed" and claim.id in (retargeted or {}).get("notes", {}):
            mode = "quick" if retargeted and retargeted["budget"] == "quick" else "full"
        seeds = tuple(int(s) for s in stored.seeds or ())
        if not any((folder / RUNS_DIR).glob("*")):
            reports.append(ClaimReport(claim, mode, Assessment([], ["No runs yet."]), "-", None,
                                       seeds=seeds))  # fmt: skip
            continue
        evidence = load_evidence(folder, stored)
        if evidence.runs.empty:
            empty = Assessment([], ["No finished runs yet."])
            reports.append(ClaimReport(claim, mode, empty, evidence.budget(), None, seeds=seeds))
            continue
        assessment = claim.assess(evidence)
        figure = f"{FIGURES}/{claim.id}.png"
        save_figure(claim.draw(evidence), out / figure, "png")
        reports.append(ClaimReport(claim, mode, assessment, evidence.budget(), figure,
                                   seeds=seeds))  # fmt: skip
    return judged(reports, sequential_decisions(out), correction)


def judged(reports: list[ClaimReport],
           sequential: dict[tuple[str, str], dict[str, Any]] | None = None,
           correction: Correction = CORRECTION) -> list[ClaimReport]:  # fmt: skip
    """The reports with every finding judged in one family (`bnbench.claims.judging`)."""
    family = [(r.claim, f) for r in reports for f in r.assessment.findings]
    judgements = iter(judge(family, correction, sequential))
    return [replace(r, judgements=tuple(next(judgements) for _ in r.assessment.findings))
            for r in reports]  # fmt: skip


def _not_claims(out: Path) -> str:
    """Why `out`, holding no claim folder, has no claims to report, and what to give instead."""
    run = f"run `bnbench claims run --out {out}`"
    if not out.exists():
        return f"{out}: does not exist; give a claims results folder, or {run} first"
    if not out.is_dir():
        return f"{out}: is a file, not a claims results folder"
    if (out / ABLATION).is_file():
        if out.name in CLAIMS:
            return (
                f"{out}: is the folder of the single claim {out.name!r}; give its parent: "
                f"`bnbench claims report {out.parent}` (or read it as an ablation with "
                f"`bnbench report {out}`)"
            )
        return (
            f"{out}: is an ablation results tree, not a claims one; read it with "
            f"`bnbench report {out}`"
        )
    return f"{out}: holds no claim results; {run}"


def write_claims_report(
    out: Path, html: bool = False, configs: Path = CONFIGS, correction: Correction | None = None
) -> tuple[list[ClaimReport], list[Path]]:
    """Assess the claims in `out` and write claims.md, claims.json, and claims.html when
    `html` or when bnbench wrote one there before (so that it never shows older results).

    Args:
        out: The claims results folder.
        html: Also write claims.html.
        configs: The folder of the claims' ablations.
        correction: The multiplicity correction; None: the one recorded in `out`'s
            claims.json (a re-render keeps the choice), else Holm.

    Returns:
        The claims' reports and the paths written.

    Raises:
        SpecError: as `assess_claims`.
    """
    from bnbench.claims.html import render_html, written_by_bnbench
    from bnbench.claims.retarget import read_record, record_markdown

    correction = correction or recorded_correction(out)
    reports = assess_claims(out, configs, correction)
    paths = [out / MARKDOWN, out / JSON]
    retargeted = read_record(out)  # a `claims run --dataset/--base`: how, and what was skipped
    sequential = sequential_record(out)  # `claims run --until-decided`: how it decided
    text = markdown(reports, sequential, correction) + record_markdown(retargeted)
    atomic_write_text(paths[0], text)
    seeds = sorted({s for r in reports for s in r.seeds})
    extra = {} if retargeted is None else {"retarget": retargeted}
    extra |= {} if sequential is None else {"sequential": sequential}
    write_json(paths[1], {"correction": correction, "correction_text": correction_text(correction),
                          "alpha": ALPHA, "seeds": seeds,
                          "claims": [_record(r) for r in reports], **extra})  # fmt: skip
    if html or written_by_bnbench(out / HTML):
        paths.append(out / HTML)
        atomic_write_text(paths[-1], render_html(reports, out, sequential, correction))
    return reports, paths


def recorded_correction(out: Path) -> Correction:
    """The correction recorded in `out`'s claims.json; Holm without one (or an unreadable one:
    the report about to be written replaces it)."""
    try:
        recorded = json.loads((out / JSON).read_text(encoding="utf-8")).get("correction")
    except (OSError, ValueError, AttributeError):
        return CORRECTION
    return next((known for known in CORRECTIONS if known == recorded), CORRECTION)


def _record(report: ClaimReport) -> dict[str, Any]:
    claim = report.claim
    return {
        **claim.listing(),
        "mode": report.mode,
        "budget": report.budget,
        "seeds": list(report.seeds),
        "figure": report.figure,
        "sentences": report.assessment.sentences,
        "findings": [_finding(f, j) for f, j in zip(report.assessment.findings,
                                                     report.judgements, strict=True)],
    }


def _number(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x


def _finding(found: Finding, judgement: Judgement) -> dict[str, Any]:
    i = found.interval
    number = _number
    replication = judgement.replication
    ruled = judgement.rules_out
    return {
        "label": found.label,
        "statistic": found.statistic,
        "verdict": judgement.verdict,
        "estimate": number(i.estimate),
        "ci_low": number(i.low),
        "ci_high": number(i.high),
        "ci_level": i.level,
        "n_seeds": i.n,
        "bounds": list(i.bounds),
        "threshold": found.threshold,
        "rule": found.rule,
        "rule_verdict": judgement.rule_verdict,
        "kind": i.kind,
        "method": judgement.method,
        "p_value": judgement.p_value,
        "p_adjusted": judgement.p_adjusted,
        "stability": judgement.stability,
        # The verdict on each part of the seeds, and which parts: "halves" or "leave_one_out".
        "parts": list(replication.parts) if replication is not None else [],
        "parts_method": replication.method if replication is not None else None,
        "settled": replication is not None and replication.settled,
        "effect": judgement.effect,
        "looks": judgement.looks,
        "rules_out": None if ruled is None else {
            "above": number(ruled.above), "below": number(ruled.below),
            "underpowered": ruled.underpowered, "text": judgement.absence(found.digits)},
    }
