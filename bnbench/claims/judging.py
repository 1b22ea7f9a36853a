"""Judging the findings of one claims report as a family: adjusted p-values, replication, and
what an inconclusive finding rules out.

Each claim's rule (`bnbench.claims.verdicts`) decides its findings one by one at 95%. A report
holds ~25 findings, so here, across all of them:

* every finding gets a p-value of the test its interval came from (t, exact sign-flip or sign
  test, `bnbench.analysis.inference`; TOST for equivalence findings), adjusted over the report
  (`bnbench.analysis.multiplicity`) by Holm's method (the default) or Benjamini-Hochberg; a
  decided finding whose adjusted p-value is not below 5% is inconclusive, so the family-wise
  error (Holm) or the false discovery rate (Benjamini-Hochberg) is at most 5%;
* the rule is re-applied to disjoint halves of the seeds (`bnbench.analysis.replication`), or
  to the seeds less one each time where a half is too small for the finding's test to decide
  (`replication_method`): a decided finding whose parts do not all reach its verdict is printed
  "(unstable)", never as settled;
* an inconclusive finding says what its interval rules out on each side, and whether the
  interval was too wide to decide the claim's smallest effect of interest (`Claim.effect`):
  "no effect larger than X" and "not enough seeds" are different answers
  (`bnbench.analysis.power.rules_out`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats

from bnbench.analysis.inference import CONFIDENCE, p_value
from bnbench.analysis.multiplicity import CORRECTIONS, Correction, adjust
from bnbench.analysis.power import RulesOut, rules_out
from bnbench.analysis.replication import Method, Replication, replicate
from bnbench.claims.claim import Claim, Finding
from bnbench.claims.verdicts import MIN_SEEDS, Value, Verdict, decide, equivalence, interval

ALPHA = 1 - CONFIDENCE
# Holm by default: a claim printed as decided is then wrong with probability at most 5% in the
# whole report, not just 5% of the decided ones on average (Benjamini-Hochberg, `--correction bh`).
CORRECTION: Correction = "holm"
NAMES: dict[Correction, str] = {"holm": "Holm", "bh": "Benjamini-Hochberg"}  # in the report
METHODS = {"continuous": "t", "grid": "exact sign-flip", "censored": "sign test"}
# The fewest seeds with which an exact sign or sign-flip test decides at 95%: 2 x 2**-6 < 0.05.
EXACT_SEEDS = 6


@dataclass(frozen=True)
class Judgement:
    """A finding judged within its report.

    Attributes:
        verdict: What the report prints: the rule's verdict after the correction, with
            " (unstable)" when its parts (halves, or leave-one-out) disagree.
        rule_verdict: The claim's rule alone, before the correction.
        p_value: The raw p-value (None: the test has none, e.g. fewer than 2 seeds).
        p_adjusted: Adjusted over the report's findings by `correction`.
        method: The interval's and test's method, e.g. "t", "TOST (exact sign-flip)".
        replication: The rule on parts of the seeds (None with fewer than 2 seeds).
        rules_out: For an inconclusive finding, what its interval excludes on each side.
        effect: The smallest effect of interest it was judged against.
        looks: With `--until-decided`, the finding's sequential record (seeds at each look,
            its decision), which then replaces the interval's verdict: the interval of data
            gathered until it cleared is not a 95% interval.
        correction: The multiplicity correction of `p_adjusted`.
    """

    verdict: str
    rule_verdict: Verdict
    p_value: float | None
    p_adjusted: float | None
    method: str
    replication: Replication[Verdict] | None
    rules_out: RulesOut | None
    effect: float
    looks: dict[str, Any] | None = None
    correction: Correction = CORRECTION

    @property
    def stability(self) -> str:
        """E.g. "replicates 2/2 halves"; "-" without seeds to split."""
        return self.replication.text() if self.replication is not None else "-"

    def absence(self, digits: int = 3) -> str:
        """For an inconclusive finding, which kind of inconclusive it is; "" otherwise:
        decided by its own 95% interval but not after the correction; "no effect larger
        than X" (the interval is narrower than the smallest effect of interest); or "not
        enough seeds", with what the interval does rule out on each side."""
        found = self.rules_out
        if found is None:
            return ""
        if found.above < 0 or found.below < 0:  # the interval lies on one side
            fixed = "" if self.p_adjusted is None else f" (adjusted p {self.p_adjusted:.3f})"
            return ("its 95% interval excludes the threshold, but not after "
                    f"{NAMES[self.correction]}{fixed}")
        ruled = [f"{name} the threshold larger than {value:.{digits}f}"
                 for name, value in (("above", found.above), ("below", found.below))
                 if math.isfinite(value)]  # fmt: skip
        if not found.underpowered:
            return f"no effect larger than {max(found.above, found.below):.{digits}f} either way"
        text = f"rules out an effect {' or '.join(ruled)}" if ruled else "rules out nothing"
        return f"not enough seeds ({text})"


def judge(findings: Sequence[tuple[Claim, Finding]], correction: Correction = CORRECTION,
          sequential: Mapping[tuple[str, str], dict[str, Any]] | None = None
          ) -> list[Judgement]:  # fmt: skip
    """Judge all findings of a report together (one family), in their order.

    Args:
        findings: (claim, finding) pairs of the report.
        correction: The multiplicity correction.
        sequential: (claim id, label) -> sequential record (`bnbench.claims.adaptive`).
    """
    raws = [finding_p_value(found) for _, found in findings]
    adjusted = adjust(raws, correction)
    triples = zip(findings, raws, adjusted, strict=True)
    records = sequential or {}
    return [_judge(claim, found, raw, fixed, records.get((claim.id, found.label)), correction)
            for (claim, found), raw, fixed in triples]  # fmt: skip


def correction_text(correction: Correction = CORRECTION) -> str:
    """E.g. "Holm (family-wise error)"."""
    return CORRECTIONS[correction]


def _judge(claim: Claim, found: Finding, raw: float | None, fixed: float | None,
           looks: dict[str, Any] | None, correction: Correction) -> Judgement:  # fmt: skip
    verdict = found.verdict
    # The correction can only withdraw a decision; TOST's p-value backs "supported" only.
    corrected = verdict == "supported" or (verdict == "not supported" and found.side is not None)
    if corrected and fixed is not None and fixed >= ALPHA:
        verdict = "inconclusive"
    if looks is not None:  # error controlled across looks and findings by the boundary
        decided = looks["decision"]
        verdict = decided if decided in ("supported", "not supported") else "inconclusive"
    replication = None
    if len(found.values) >= 2:
        how = replication_method(len(found.values), found.interval.kind)
        parts = replicate(list(found.values), lambda part: rederive(found, part), how)
        # Held against the verdict printed (after the correction), which is what must replicate.
        replication = Replication(verdict, parts.parts, parts.method)
    printed: str = verdict
    if verdict != "inconclusive" and replication is not None and not replication.settled:
        printed = f"{verdict} (unstable)"
    effect = claim.effect_of(found.label)
    ruled = None
    if verdict == "inconclusive" and found.interval.estimate is not None:
        centre = found.threshold if found.side is not None else 0.0
        ruled = rules_out(found.interval, centre, effect)
    method = METHODS[found.interval.kind]
    method = method if found.side is not None else f"TOST ({method})"
    return Judgement(printed, found.verdict, raw, fixed, method, replication, ruled, effect,
                     looks, correction)  # fmt: skip


def replication_method(seeds: int, kind: str) -> Method:
    """Halves, where half of the seeds can decide by the test of the finding's kind; else
    leave-one-out. An exact test (grid-valued or censored statistics) decides nothing with
    fewer than `EXACT_SEEDS` seeds (5 agreeing seeds: 2 x 2**-5 = 0.0625), so at 10 seeds
    its halves would read "replicates 0/2" whatever the data: a mark of the halves' size, not
    of the finding. The t interval decides from `MIN_SEEDS` seeds."""
    fewest = MIN_SEEDS if kind == "continuous" else EXACT_SEEDS
    return "halves" if seeds // 2 >= fewest else "leave_one_out"


def finding_p_value(found: Finding) -> float | None:
    """The two-sided p-value of "the statistic is at its threshold" by the test of its kind
    (an equivalence finding: its TOST p-value)."""
    if found.side is None:
        return found.p_value
    if len(found.values) < 2:
        return None
    null = to_values_scale(found.threshold, found.scale)
    if found.interval.kind == "censored":
        return censored_p_value(found.values, null)
    return p_value([v.value for v in found.values], found.interval.kind, null)


def censored_p_value(values: Sequence[Value], null: float) -> float:
    """The two-sided sign test with bounds: a value counts on a side only when its bound
    implies it (a lower bound above `null`), and one that does not counts for neither side
    while staying in n, which only makes the test more conservative."""
    above = sum(v.value > null and v.bound != "upper" for v in values)
    below = sum(v.value < null and v.bound != "lower" for v in values)
    n = sum(v.value != null for v in values)
    if n == 0:
        return 1.0
    tail = min(stats.binom.sf(above - 1, n, 0.5), stats.binom.sf(below - 1, n, 0.5))
    return float(min(1.0, 2 * tail))


def rederive(found: Finding, values: Sequence[Value]) -> Verdict:
    """The finding's rule applied to `values` (a part of its seeds)."""
    if found.side is None:
        return equivalence(values, found.threshold).verdict
    part = interval(values)
    if found.scale is not None:
        part = part.mapped(found.scale)
    return decide(part, found.threshold, found.side)


def to_values_scale(threshold: float, scale: str | None) -> float:
    """A threshold shown on the exp / 10** scale, on the scale of the values."""
    if scale == "exp":
        return math.log(threshold)
    if scale == "pow10":
        return math.log10(threshold)
    return threshold
