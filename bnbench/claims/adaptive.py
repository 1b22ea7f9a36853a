"""Adaptive seeding (`claims run --until-decided`): seeds added in rounds to the claims whose
findings are still open, each finding stopped by a group-sequential boundary.

Looking after every round and stopping when an interval clears its threshold would find
"supported" far more often than 5% under the null. Each finding is instead two one-sided
hypotheses (above, below its threshold), each tested by the group-sequential sign test of
`bnbench.analysis.sequential` (alpha spent over the looks, O'Brien-Fleming-type) with M =
`--max-seeds` as full information, and the run's findings are one family: Holm's step-down over
all their hypotheses (`bnbench.analysis.sequential.step_down`). The family has 2 hypotheses per
finding of the first look, so it starts exactly where Bonferroni does (each at 0.05 / 2K, K
findings); each hypothesis rejected raises the others' level to 0.05 / (hypotheses left), with
their spending functions re-applied at every look so far (Maurer & Bretz 2013). A decision is
never withdrawn; a finding left open when its claim reaches M is inconclusive, unless a later
rejection elsewhere in the family lets its looks clear the raised boundary. The step-down is
valid, not a heuristic: it is the closed test of Bonferroni tests, computed exactly, and its
family-wise error is simulated under global and partial nulls in
tests/test_inference_sequential.py. It is worth its few lines where many findings are decided
(the BN suite's case): never fewer decisions than Bonferroni, and in a simulated suite of 25
findings, 20 with a clear effect, about one more at M = 40 (0.2 more at M = 20; the sign test's
discrete boundaries move in steps); with few decided it equals Bonferroni.

Equivalence (TOST) findings have no sequential test: they are judged once, on the final seeds,
by the report's rule; their two hypotheses stay in the family, never rejected here, so they
keep the share Bonferroni gave them.

The looks are recorded in `OUT/looks.json` (each finding's sign counts at every look, which
the step-down re-reads), written after every round, so the same command resumes: it re-plans
each open claim with the seeds of its current round and continues.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bnbench.analysis.inference import CODES, CONFIDENCE
from bnbench.analysis.sequential import (
    boundary_table,
    counts,
    ever_crossed,
    holm_levels,
    step_down,
)
from bnbench.claims.claim import Finding
from bnbench.claims.judging import to_values_scale
from bnbench.errors import SpecError
from bnbench.results.files import read_mapping, write_json

LOOKS = "looks.json"
FORMAT = 2  # 2: per-look sign counts and Holm's step-down (1, Bonferroni, kept only the last)
CORRECTION = "holm step-down"
CORRECTION_TEXT = ("Holm's step-down over group-sequential sign tests (closed testing; "
                   "O'Brien-Fleming spending re-applied at every look)")  # fmt: skip
SIDES = ("above", "below")


@dataclass
class Looks:
    """The state of an adaptive run: per claim its seeds, per finding its looks.

    Attributes:
        max_seeds: M, the most seeds a claim may get.
        step: Seeds added to an open claim per round.
        alpha: The family-wise error over all findings, both sides and all looks.
        hypotheses: The family's size, 2 per finding of the first look (0 before it).
        claims: claim id -> {"looked": seeds of its last look, "seeds": seeds of its next
            round (or its last, when it is done), "findings": {label: {"side": ..., "looks":
            [n, ...], "above": [k, ...], "below": [k, ...], "decision": ..., "level": ...,
            "critical": k}}}: counts per look; level and critical are the one-sided level of
            the step it was last tested at and its boundary at the last look.
    """

    max_seeds: int
    step: int
    alpha: float = 1 - CONFIDENCE
    hypotheses: int = 0
    claims: dict[str, dict[str, Any]] = field(default_factory=dict)

    def seeds(self, claim_id: str) -> list[int] | None:
        """The seeds of the claim's current round (None before its first)."""
        entry = self.claims.get(claim_id)
        return list(entry["seeds"]) if entry else None

    def open(self, claim_id: str) -> bool:
        """Whether the claim still needs a round: never run, or a finding still open."""
        entry = self.claims.get(claim_id)
        if entry is None:
            return True
        return any(f["decision"] == "continue" for f in entry["findings"].values())

    def record(self) -> dict[str, Any]:
        return {"format": FORMAT, "correction": CORRECTION, "correction_text": CORRECTION_TEXT,
                "max_seeds": self.max_seeds, "step": self.step, "alpha": self.alpha,
                "hypotheses": self.hypotheses, "claims": self.claims}  # fmt: skip


def load_looks(out: Path, max_seeds: int, step: int) -> Looks:
    """The looks so far in `out`, or a fresh state.

    Raises:
        SpecError: `out` holds the looks of an adaptive run with another --max-seeds, or of
            an earlier bnbench's (which kept too little to step down).
    """
    path = out / LOOKS
    if not path.is_file():
        return Looks(max_seeds, step)
    data = read_mapping(path)
    if data.get("format") != FORMAT:
        raise SpecError(f"{path}: written by an earlier bnbench (Bonferroni looks without the "
                        "counts at each look); finish that run with it, or choose another "
                        "--out")  # fmt: skip
    if data["max_seeds"] != max_seeds:
        raise SpecError(f"{path}: this adaptive run was started with --max-seeds "
                        f"{data['max_seeds']}, not {max_seeds}; give the same value to resume "
                        "it, or choose another --out")  # fmt: skip
    return Looks(int(data["max_seeds"]), int(data["step"]), float(data["alpha"]),
                 int(data["hypotheses"]), data["claims"])  # fmt: skip


def look(looks: Looks, claim_id: str, seeds: list[int], findings: list[Finding],
         family: int) -> None:  # fmt: skip
    """Take one look at a claim's findings on `seeds`, then settle the family (`settle`).

    Args:
        looks: The run's state, updated in place.
        claim_id: The claim.
        seeds: The seeds its findings were computed on.
        findings: Its findings on them.
        family: The run's findings at its first look (all claims, equivalence ones too): the
            first look fixes the family at 2 hypotheses each, so the levels cannot drift.
    """
    if not looks.claims:
        looks.hypotheses = 2 * max(family, 1)
    entry = looks.claims.setdefault(claim_id, {"looked": [], "seeds": list(seeds),
                                               "findings": {}})  # fmt: skip
    for found in findings:
        if found.side is None:
            continue  # equivalence: judged once on the final seeds by its own rule
        state = entry["findings"].setdefault(
            found.label, {"side": found.side, "looks": [], "above": [], "below": [],
                          "decision": "continue"})  # fmt: skip
        n = len(found.values)
        if n < 1 or (state["looks"] and n <= state["looks"][-1]):
            continue
        values = np.array([[v.value for v in found.values]], dtype=float)
        codes = np.array([[CODES[v.bound] for v in found.values]])
        above, below = counts(values, codes, to_values_scale(found.threshold, found.scale))
        state["looks"].append(n)
        state["above"].append(int(above[0]))
        state["below"].append(int(below[0]))
    entry["looked"] = list(seeds)
    settle(looks)


def settle(looks: Looks) -> None:
    """Decide every finding of the run from all looks so far, by Holm's step-down, and plan
    each claim's next seeds: its last look's extended by `step` while a finding is open and
    M is not reached (idempotent: settling twice plans the same)."""
    tested = [(cid, label, state) for cid, entry in looks.claims.items()
              for label, state in entry["findings"].items() if state["looks"]]  # fmt: skip
    size = max(looks.hypotheses, 2 * len(tested))  # the rest: equivalence, never rejected here
    levels = holm_levels(looks.alpha, size)
    crossed = np.zeros((size, size), dtype=bool)
    for i, (_, _, state) in enumerate(tested):
        for j, side in enumerate(SIDES):
            crossed[:, 2 * i + j] = ever_crossed(np.array(state[side]), state["looks"],
                                                 looks.max_seeds, levels)  # fmt: skip
    rejected = step_down(crossed)
    level = levels[max(size - int(rejected.sum()), 1) - 1]  # Holm's current step
    for i, (_, _, state) in enumerate(tested):
        favour = SIDES.index(state["side"])
        if state["decision"] not in ("supported", "not supported"):  # never withdrawn
            if rejected[2 * i + favour]:
                state["decision"] = "supported"
            elif rejected[2 * i + 1 - favour]:
                state["decision"] = "not supported"
        table = boundary_table(tuple(state["looks"]), looks.max_seeds, (level,))
        state.update(level=level, critical=int(table[0, -1]))
    for entry in looks.claims.values():
        looked = entry["looked"]
        ended = len(looked) >= looks.max_seeds
        for state in entry["findings"].values():  # a finding without values too
            if state["decision"] in ("continue", "inconclusive"):
                state["decision"] = "inconclusive" if ended else "continue"
        entry["seeds"] = list(looked)
        if looked and any(f["decision"] == "continue" for f in entry["findings"].values()):
            more = min(looks.step, looks.max_seeds - len(looked))
            entry["seeds"] = [*looked, *range(max(looked) + 1, max(looked) + 1 + more)]


def save_looks(out: Path, looks: Looks) -> None:
    """Write the looks atomically, after each round."""
    write_json(out / LOOKS, looks.record())


def sequential_record(out: Path) -> dict[str, Any] | None:
    """How `claims run --until-decided` decided in `out` (its correction, level and family),
    for the report; None without looks."""
    path = out / LOOKS
    if not path.is_file():
        return None
    data = read_mapping(path)
    if "format" not in data:  # format 1, before the step-down: level 1 - 0.05 / K per finding
        alpha = 1 - CONFIDENCE
        return {"correction": "bonferroni", "correction_text": "Bonferroni over group-sequential "
                "sign tests", "alpha": alpha, "max_seeds": data["max_seeds"],
                "hypotheses": 2 * round(alpha / (1 - data["level"]))}  # fmt: skip
    keys = ("correction", "correction_text", "alpha", "hypotheses", "max_seeds")
    return {key: data[key] for key in keys}


def sequential_decisions(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(claim id, finding label) -> its sequential record, for the report; {} without looks."""
    path = out / LOOKS
    if not path.is_file():
        return {}
    claims = read_mapping(path)["claims"]
    return {(cid, label): state for cid, entry in claims.items()
            for label, state in entry["findings"].items()}  # fmt: skip
