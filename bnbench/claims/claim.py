"""The types a claim is made of: its entry, its quick budget and what its rule finds.

A claim is one module and one YAML file in `bnbench/claims/catalog/`, both named after its id:
the YAML is its ablation (data, whose header states the claim, its source, budget, runtime and
expected outcome); the module declares the claim's metadata as a `Claim` named `CLAIM`, with its
verdict rule (`assess` reads the claim's results tree and returns findings) and its figure
(`draw`, from the same tree). The rule's thresholds are constants declared beside it, never tuned
on the results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bnbench.claims.evidence import Evidence
from bnbench.claims.verdicts import Interval, Side, Value, Verdict

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Finding:
    """One tested statement of a claim, with its statistic and verdict.

    Attributes:
        label: What distinguishes it among the claim's findings, e.g. "recalibrated BN
            statistics"; "" when the claim has one finding.
        statistic: The named statistic, e.g. "paired ratio of steps to 90% val. accuracy".
        interval: Its estimate and interval over seeds, on the scale shown.
        threshold: The declared threshold, on the same scale.
        rule: The rule in words (`bnbench.claims.verdicts.rule_text`).
        verdict: What the rule says.
        digits: Decimals shown for the statistic.
        p_value: The test's p-value when it has one (TOST).
        values: The per-seed values the interval came from (on the log scale when `scale`
            is set), for the report's p-value, replication and sequential decision.
        side: Where the claim puts the statistic (None: an equivalence test, whose
            threshold is its margin).
        scale: The map from the values' scale to the one shown ("exp", "pow10").
    """

    label: str
    statistic: str
    interval: Interval
    threshold: float
    rule: str
    verdict: Verdict
    digits: int = 3
    p_value: float | None = None
    values: tuple[Value, ...] = ()
    side: Side | None = None
    scale: Literal["exp", "pow10"] | None = None


@dataclass(frozen=True)
class Assessment:
    """What a claim's rule found: its findings, and sentences that report the numbers."""

    findings: list[Finding]
    sentences: list[str] = field(default_factory=list)


# Seeds of the quick budget: 10, as the full budget's (the YAMLs' `seeds`). 10 is the fewest
# with which an exact sign or sign-flip test of agreeing seeds survives Holm's correction over
# the suite's 25 findings (2 x 2**-10 x 25 = 0.049); at 6 (the earlier quick budget: 80% power
# for most of the 3-seed pilot's effects, and the fewest seeds with which an exact test decides
# at all, 2 x 2**-6 = 0.031) no grid-valued or censored finding could survive the correction,
# and 5 of 25 decisions changed between disjoint seed sets. The quick budget keeps its fewer
# grid points and arms; each claim YAML's "Seeds:" line gives its own power numbers.
QUICK_SEEDS = 10


@dataclass(frozen=True)
class Reduction:
    """The quick budget of a claim: what `--quick` changes in its ablation.

    Attributes:
        seeds: The seeds to run (replaces `seeds`/`repeats`).
        grid: Grid keys whose values are replaced.
        overrides: Overrides added to (or replacing) the ablation's own.
        arms: The arms kept (all when empty).
    """

    seeds: list[int] = field(default_factory=lambda: list(range(QUICK_SEEDS)))
    grid: dict[str, list[Any]] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    arms: list[str] = field(default_factory=list)

    def apply(self, data: dict[str, Any]) -> dict[str, Any]:
        """The ablation file's data with the quick budget applied (a new mapping)."""
        out = dict(data)
        out.pop("repeats", None)
        out["seeds"] = list(self.seeds)
        out["overrides"] = {**(data.get("overrides") or {}), **self.overrides}
        if self.grid:
            out["grid"] = {**(data.get("grid") or {}), **self.grid}
        if self.arms:
            arms = data.get("arms") or {}
            out["arms"] = {name: arms[name] for name in self.arms if name in arms}
        return out


@dataclass(frozen=True, kw_only=True)
class Claim:
    """One claim about batch norm and how bnbench tests it (a catalog module's `CLAIM`).

    Attributes:
        id: The claim's name on the command line, its module, its YAML and its results folder,
            e.g. "faster_training".
        statement: The claim in words, as it is usually made; the YAML header quotes it.
        source: Who the claim is usually attributed to.
        measures: What is measured, in words.
        runtime: Expected wall time of the full and the quick budget with --jobs 2.
        quick: The reduced budget of --quick.
        arms: The arms the rule and the figure read by name; each must be an arm of the YAML.
        assess: The verdict rule.
        draw: The claim's figure.
        family: The network the claim is about when it fixes one (e.g. "deep sigmoid MLP"):
            retargeted onto other data it keeps its own network, and it does not run on a
            user's network (`claims run --base`); None: any network.
        fixes_data: Why the claim keeps its own data (its question is about that data), or
            None: it runs on other data (`claims run --dataset/--base`).
        keeps: Override keys of the YAML that are part of the claim's question and stay on a
            user's network (e.g. init_scale's `model.initializer`); the other network tuning
            keys of the YAML (`bnbench.claims.retarget.TUNING`) give way to the user's.
        effect: The smallest effect of interest of its findings, a distance from the
            threshold on the scale shown (default: 2 points of accuracy); an inconclusive
            finding whose interval rules out larger effects on both sides is "no effect
            larger than" it, otherwise "not enough seeds".
        effects: The same per finding label, where a finding's statistic has another unit.
    """

    id: str
    statement: str
    source: str
    measures: str
    runtime: str
    quick: Reduction = field(default_factory=Reduction)
    arms: tuple[str, ...]
    assess: Callable[[Evidence], Assessment]
    draw: Callable[[Evidence], Figure]
    family: str | None = None
    fixes_data: str | None = None
    keeps: tuple[str, ...] = ()
    effect: float = 0.02
    effects: dict[str, float] = field(default_factory=dict)

    def effect_of(self, label: str) -> float:
        """The smallest effect of interest of the finding `label`."""
        return self.effects.get(label, self.effect)

    def listing(self) -> dict[str, str]:
        """What `bnbench claims list` shows."""
        return {
            "id": self.id,
            "claim": self.statement,
            "source": self.source,
            "measures": self.measures,
            "runtime": self.runtime,
        }
