"""How long a suite of ablations run one after another will take, before it runs: the runtime
of `bnbench claims run --estimate`, where each claim is one ablation in `OUT/<claim id>/`.

Each part is estimated as `bnbench plan --estimate` estimates one ablation
(`bnbench.ablate.estimate.estimate_runtime`): from the timings of runs already finished in its
folder `OUT/<name>/`, else from a short probe of its units of work (a run alone, a vectorized
group of seeds) in fresh worker-like processes. The parts run one after another, each with its
own workers, so the suite's time is the sum of theirs.

A probe costs process starts and a few dozen steps, and many parts train the same network on
the same data (every claim's shipped MLP on the chosen dataset); a probe is therefore shared by
every unit, in any part, with the same backend, network, data and batch size that trains alike
(alone, or in a group of as many seeds) (`ProbeCache`). Settings that change no arithmetic
(initializer, activation, BN's momentum, epsilon and placement: `estimate.cost_key`) do not
make a network another: on CIFAR-10's conv stack each probe takes minutes.

Nothing here writes: the probes train in temporary folders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bnbench.ablate.estimate import cost_key, estimate_runtime
from bnbench.ablate.groups import DEFAULT_GROUP_SIZE

if TYPE_CHECKING:
    from bnbench.ablate.estimate import Costs, Estimate, ProbeUnits
    from bnbench.ablate.groups import Unit
    from bnbench.config.ablation import Ablation


@dataclass
class ProbeCache:
    """Probes shared between units and parts: one per backend, network (`cost_key`), data and
    batch size, and way of training (alone, or in a vectorized group of so many seeds).

    Attributes:
        probe: How to probe units of work (None: `bnbench.ablate.probe.probe_costs`).
        found: Key -> the costs its probe measured.
        probes: How many units were actually probed.
    """

    probe: ProbeUnits | None = None
    found: dict[str, Costs] = field(default_factory=dict)
    probes: int = 0

    def __call__(self, units: Sequence[tuple[Unit, int]], jobs: int,
                 workers: int) -> list[Costs]:  # fmt: skip
        from bnbench.ablate.probe import probe_costs  # it imports this module's neighbours

        keys = [_key(unit, cost_key) for unit, _ in units]
        missing = list({key: found for key, found in zip(keys, units, strict=True)
                        if key not in self.found}.items())  # fmt: skip
        if missing:
            probed = (self.probe or probe_costs)([found for _, found in missing], jobs, workers)
            self.found |= {key: costs for (key, _), costs in zip(missing, probed, strict=True)}
            self.probes += len(missing)
        return [self.found[key] for key in keys]


def _key(unit: Unit, network: Callable[[dict[str, Any]], str]) -> str:
    """What a shared probe is keyed by: the unit's network (`network`, e.g. `cost_key`, of its
    config) and how it trains."""
    group = len(unit.runs) if unit.vectorized else 0
    return f"{network(unit.runs[0].spec.model_dump(mode='json'))}/{group}"


@dataclass(frozen=True)
class PartEstimate:
    """One part's estimate: its name, its runs and the estimate of those still to train."""

    name: str
    runs: int
    estimate: Estimate


def estimate_suite(
    parts: Sequence[tuple[str, Ablation]],
    out: Path,
    jobs: int,
    probe: ProbeUnits | None = None,
    on_part: Callable[[str], None] | None = None,
    group_size: int = DEFAULT_GROUP_SIZE,
) -> list[PartEstimate]:
    """Estimate each part's runtime at `jobs` runs at once, learning from `OUT/<name>/`.

    Args:
        parts: (name, ablation) in the order they will run, e.g. the claims `claims run`
            planned, each named by its id.
        out: The suite's results directory (it may not exist yet).
        jobs: Runs at once within a part.
        probe: How to probe units of work (default: a shared `ProbeCache` over
            `bnbench.ablate.probe.probe_costs`).
        on_part: Called with each part's name before it is estimated (for progress).
        group_size: The most seeds trained as one vectorized group (`ablate --group-size`).

    Raises:
        SpecError: a probe run failed.
    """
    shared = probe if probe is not None else ProbeCache()
    found = []
    for name, ablation in parts:
        if on_part is not None:
            on_part(name)
        folder = out / name
        estimate = estimate_runtime(ablation, folder if folder.is_dir() else None, jobs,
                                    probe=shared, group_size=group_size)  # fmt: skip
        found.append(PartEstimate(name, len(ablation.runs), estimate))
    return found


def total_seconds(estimates: Sequence[PartEstimate]) -> float | None:
    """The suite's estimated seconds (parts run one after another); None when a part with
    runs left to train could not be estimated at all."""
    total = 0.0
    for found in estimates:
        if found.estimate.remaining and found.estimate.seconds is None:
            return None
        total += found.estimate.seconds or 0.0
    return total


def unestimated(estimates: Sequence[PartEstimate]) -> int:
    """Runs left to train that no estimate covers (their length or costs are not known)."""
    return sum(e.estimate.remaining - e.estimate.estimated for e in estimates)
