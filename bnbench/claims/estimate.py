"""How long a `claims run` will take, before it runs (`bnbench claims run --estimate`).

Each planned claim is an ablation, so each is estimated as `bnbench plan --estimate` estimates
one (`bnbench.ablate.estimate.estimate_runtime`): from the timings of runs already finished in
its folder `OUT/<id>/`, else from a short probe run of its grid in a fresh process. Claims run
one after another, each with its own workers, so the suite's time is the sum of theirs.

A probe costs a process start and a few dozen steps, and many claims train the same network on
the same data (the shipped MLP on the chosen dataset); a probe is therefore shared by every
claim whose probed run has the same backend, network, data and batch size
(`ProbeCache`). The estimate assumes every run trains on its own (the per-seed path): seeds
that train as one vectorized group take less.

Nothing here writes: the probes train in temporary folders. The ablation machinery is imported
only when an estimate is made, so that listing and reporting claims never load it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bnbench.ablate.estimate import Costs, Estimate
    from bnbench.claims.claim import Claim
    from bnbench.config.ablation import Ablation, PlannedRun

Probe = Callable[["PlannedRun", int], "Costs"]


@dataclass
class ProbeCache:
    """Probes shared between claims: one per backend, network, data and batch size.

    Attributes:
        probe: How to probe one run for some steps (None: `probe_costs`).
        found: Architecture key -> the costs its probe measured.
        probes: How many probes actually ran.
    """

    probe: Probe | None = None
    found: dict[str, Costs] = field(default_factory=dict)
    probes: int = 0

    def __call__(self, run: PlannedRun, steps: int) -> Costs:
        from bnbench.ablate.estimate import architecture_key, probe_costs

        key = architecture_key(run.spec.model_dump(mode="json"))
        if key not in self.found:
            self.found[key] = (self.probe or probe_costs)(run, steps)
            self.probes += 1
        return self.found[key]


@dataclass(frozen=True)
class ClaimEstimate:
    """One claim's estimate: its id, its runs and the estimate of those still to train."""

    claim_id: str
    runs: int
    estimate: Estimate


def estimate_claims(
    planned: Sequence[tuple[Claim, Ablation]],
    out: Path,
    jobs: int,
    probe: Probe | None = None,
    on_claim: Callable[[str], None] | None = None,
) -> list[ClaimEstimate]:
    """Estimate each planned claim's runtime at `jobs` runs at once, learning from `OUT/<id>/`.

    Args:
        planned: The claims and their ablations, as `claims run` planned them.
        out: The claims results directory (it may not exist yet).
        jobs: Runs at once within a claim.
        probe: How to probe one run (default: a shared `ProbeCache` over `probe_costs`).
        on_claim: Called with each claim's id before it is estimated (for progress).

    Raises:
        SpecError: a probe run failed.
    """
    from bnbench.ablate.estimate import estimate_runtime

    shared = probe if probe is not None else ProbeCache()
    found = []
    for claim, ablation in planned:
        if on_claim is not None:
            on_claim(claim.id)
        folder = out / claim.id
        estimate = estimate_runtime(ablation, folder if folder.is_dir() else None, jobs,
                                    probe=True, probe_run=shared)  # fmt: skip
        found.append(ClaimEstimate(claim.id, len(ablation.runs), estimate))
    return found


def total_seconds(estimates: Sequence[ClaimEstimate]) -> float | None:
    """The suite's estimated seconds (claims run one after another); None when a claim with
    runs left to train could not be estimated at all."""
    total = 0.0
    for found in estimates:
        if found.estimate.remaining and found.estimate.seconds is None:
            return None
        total += found.estimate.seconds or 0.0
    return total


def unestimated(estimates: Sequence[ClaimEstimate]) -> int:
    """Runs left to train that no estimate covers (their length or costs are not known)."""
    return sum(e.estimate.remaining - e.estimate.estimated for e in estimates)
