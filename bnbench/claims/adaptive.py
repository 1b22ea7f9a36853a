"""Adaptive seeding (`claims run --until-decided`): seeds added in rounds to the claims whose
findings are still open, each finding stopped by a group-sequential boundary.

Looking after every round and stopping when an interval clears its threshold would find
"supported" far more often than 5% under the null. Each finding is instead decided by the
group-sequential sign test of `bnbench.analysis.sequential` (alpha spent over the looks,
O'Brien-Fleming-type), at the level that holds for the run's findings jointly (Bonferroni,
`bnbench.analysis.multiplicity.family_level`), with M = `--max-seeds` as full information. A
decided finding keeps its decision; a claim gets more seeds while one of its findings is open.
Equivalence (TOST) findings have no sequential test: they are judged once, on the final seeds.

The looks are recorded in `OUT/looks.json`, written after every round, so the same command
resumes: it re-plans each open claim with the seeds of its current round and continues.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnbench.analysis.inference import CONFIDENCE
from bnbench.analysis.multiplicity import family_level
from bnbench.analysis.sequential import sequential_decision
from bnbench.claims.claim import Finding
from bnbench.claims.judging import to_values_scale
from bnbench.errors import SpecError
from bnbench.results.files import read_mapping, write_json

LOOKS = "looks.json"


@dataclass
class Looks:
    """The state of an adaptive run: per claim its current seeds, per finding its looks.

    Attributes:
        max_seeds: M, the most seeds a claim may get.
        step: Seeds added to an open claim per round.
        level: The per-finding level (family-wise 95% over `family` findings).
        claims: claim id -> {"seeds": [...], "findings": {label: {"looks": [n, ...],
            "decision": ..., "above": k, "below": k, "critical": k}}}.
    """

    max_seeds: int
    step: int
    level: float = CONFIDENCE
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
        return {"max_seeds": self.max_seeds, "step": self.step, "level": self.level,
                "claims": self.claims}  # fmt: skip


def load_looks(out: Path, max_seeds: int, step: int) -> Looks:
    """The looks so far in `out`, or a fresh state.

    Raises:
        SpecError: `out` holds the looks of an adaptive run with another --max-seeds.
    """
    path = out / LOOKS
    if not path.is_file():
        return Looks(max_seeds, step)
    data = read_mapping(path)
    if data["max_seeds"] != max_seeds:
        raise SpecError(f"{path}: this adaptive run was started with --max-seeds "
                        f"{data['max_seeds']}, not {max_seeds}; give the same value to resume "
                        "it, or choose another --out")  # fmt: skip
    return Looks(int(data["max_seeds"]), int(data["step"]), float(data["level"]), data["claims"])


def look(looks: Looks, claim_id: str, seeds: list[int], findings: list[Finding],
         family: int) -> None:  # fmt: skip
    """Take one look at a claim's findings on `seeds` and plan its next round.

    A finding already decided keeps its decision; an open one is decided by the sequential
    test at this look; the claim's next seeds extend its current ones by `step`, up to M.
    """
    if not looks.claims:  # the first look fixes the family, so the level cannot drift
        looks.level = family_level(max(family, 1))
    entry = looks.claims.setdefault(claim_id, {"seeds": list(seeds), "findings": {}})
    for found in findings:
        if found.side is None:
            continue  # equivalence: judged once on the final seeds by its own rule
        state = entry["findings"].setdefault(found.label, {"looks": [], "decision": "continue"})
        n = len(found.values)
        if state["decision"] != "continue" or n < 1 or (state["looks"] and n <= state["looks"][-1]):
            continue
        state["looks"].append(n)
        result = sequential_decision(
            [v.value for v in found.values], state["looks"], looks.max_seeds,
            to_values_scale(found.threshold, found.scale), found.side,
            bounds=[v.bound for v in found.values], level=looks.level,
        )
        done = result.decision == "continue" and len(seeds) >= looks.max_seeds
        state.update(decision="inconclusive" if done else result.decision, above=result.above,
                     below=result.below, critical=result.critical)  # fmt: skip
    entry["seeds"] = list(seeds)
    if looks.open(claim_id) and len(seeds) < looks.max_seeds:
        more = min(looks.step, looks.max_seeds - len(seeds))
        entry["seeds"] = [*seeds, *range(max(seeds) + 1, max(seeds) + 1 + more)]
    elif looks.open(claim_id):  # M reached: what is still open stays undecided
        for state in entry["findings"].values():
            if state["decision"] == "continue":
                state["decision"] = "inconclusive"


def save_looks(out: Path, looks: Looks) -> None:
    """Write the looks atomically, after each round."""
    write_json(out / LOOKS, looks.record())


def sequential_decisions(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(claim id, finding label) -> its sequential record, for the report; {} without looks."""
    path = out / LOOKS
    if not path.is_file():
        return {}
    claims = read_mapping(path)["claims"]
    return {(cid, label): state for cid, entry in claims.items()
            for label, state in entry["findings"].items()}  # fmt: skip
