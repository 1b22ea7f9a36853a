"""Loading a claim's ablation (full or quick budget) and running the selected claims.

Each claim runs as an ordinary ablation into `OUT/<id>/` through `bnbench.ablate.runner`, so a
claims run resumes like an ablation (finished runs are skipped, interrupted ones re-run, also
after `kill -9`) and every claim folder can be read by `bnbench report` and `bnbench plot`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bnbench.claims.claim import Claim
from bnbench.config.ablation import Ablation, AblationSpec, expand, load_ablation
from bnbench.config.loading import validate
from bnbench.config.yamlfile import load_yaml
from bnbench.errors import SpecError
from bnbench.results.files import read_mapping
from bnbench.results.layout import ABLATION, MANIFEST

if TYPE_CHECKING:
    from bnbench.ablate.runner import Listener, Outcome

# The shipped claim ablations: configs/claims/ beside the package in a source checkout.
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "claims"
Mode = Literal["quick", "full", "changed"]


def claim_path(claim: Claim, configs: Path = CONFIGS) -> Path:
    """The claim's ablation file.

    Raises:
        SpecError: it does not exist.
    """
    path = configs / f"{claim.id}.yaml"
    if not path.is_file():
        raise SpecError(f"claim {claim.id!r}: its ablation {str(path)!r} does not exist")
    return path


def load_claim(claim: Claim, quick: bool, configs: Path = CONFIGS) -> Ablation:
    """Read, validate and expand a claim's ablation, with its quick budget when `quick`.

    The full budget is the file as `bnbench ablate` loads it, so `bnbench ablate` and `bnbench
    plan` work on a claim's folder too.

    Raises:
        SpecError: the file, its base spec or an expanded run is invalid.
    """
    path = claim_path(claim, configs)
    if not quick:
        return load_ablation(path)
    data, _ = load_yaml(path)
    # The quick budget changes the data, so the file's line numbers no longer apply.
    spec = validate(AblationSpec, claim.quick.apply(data), None)
    if not isinstance(spec.base, str):
        raise SpecError(f"{path}: a claim's base must be a run spec file, not a mapping")
    base_path = (path.parent / spec.base).resolve()
    base, _ = load_yaml(base_path)
    # Resolved as `load_ablation` resolves the full budget.
    resolved = spec.model_dump(mode="json")
    resolved |= {"base": base, "seeds": spec.seed_list, "reference": spec.reference_arm}
    resolved.pop("repeats", None)
    return Ablation(spec, resolved, expand(spec, base, str(base_path)))


def claim_mode(claim: Claim, claim_dir: Path, configs: Path = CONFIGS) -> Mode:
    """Whether `claim_dir` holds the claim's quick or full budget, or a changed ablation."""
    stored = read_mapping(claim_dir / ABLATION)
    for quick in (True, False):
        try:
            if stored == load_claim(claim, quick, configs).resolved:
                return "quick" if quick else "full"
        except SpecError:  # the claim file itself no longer loads
            return "changed"
    return "changed"


@dataclass
class ClaimsOutcome:
    """What a `claims run` did, claim by claim."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def failed(self) -> dict[str, list[str]]:
        return {cid: o.failed for cid, o in self.outcomes.items() if o.failed}


Display = Callable[[str, Ablation, Path], AbstractContextManager["Listener"]]


def plan_claims(claims: list[Claim], out: Path, quick: bool, configs: Path = CONFIGS
                ) -> list[tuple[Claim, Ablation]]:  # fmt: skip
    """Load every claim's ablation and check its folder before anything runs.

    Raises:
        SpecError: an invalid claim file, `out` a file or an ablation's results tree, or a
            folder `OUT/<id>` that holds something else (another budget of the claim, say):
            then nothing has been written.
    """
    check_claims_out(out)
    planned = [(claim, load_claim(claim, quick, configs)) for claim in claims]
    for claim, ablation in planned:
        folder = out / claim.id
        if (folder / ABLATION).exists() and read_mapping(folder / ABLATION) != ablation.resolved:
            other = claim_mode(claim, folder, configs)
            raise SpecError(
                f"{folder}: holds the {other} budget of claim {claim.id!r}, not the "
                f"{'quick' if quick else 'full'} one; choose another --out (or delete the "
                "folder to start over)"
            )
        if folder.exists() and not folder.is_dir():
            raise SpecError(f"{folder}: exists and is not a folder")
    return planned


def check_claims_out(out: Path) -> None:
    """Refuse an --out for `claims run` that is a file or an ablation's results tree (which
    `bnbench ablate` wrote, or one claim's folder); reads only.

    Raises:
        SpecError: as said, with what to do instead.
    """
    from bnbench.claims.registry import CLAIMS

    if out.exists() and not out.is_dir():
        raise SpecError(f"--out {out} is a file, not a folder")
    found = [name for name in (ABLATION, MANIFEST) if (out / name).exists()]
    if found:
        where = (f" (the folder of claim {out.name!r}: give its parent, {out.parent})"
                 if out.name in CLAIMS else "")  # fmt: skip
        raise SpecError(
            f"{out} holds an ablation ({found[0]}){where}; choose another --out for claims"
        )


def run_claims(
    planned: list[tuple[Claim, Ablation]], out: Path, jobs: int, display: Display
) -> ClaimsOutcome:
    """Run each planned claim's ablation into `OUT/<id>/` and rebuild its runs.csv.

    Args:
        planned: From `plan_claims`.
        out: The claims results directory.
        jobs: Runs at once within a claim.
        display: (claim id, ablation, folder) -> a context giving the progress listener.

    Returns:
        The outcome of every claim that ran; `interrupted` after a Ctrl-C, when the claims
        after the interrupted one are not started.
    """
    from bnbench.ablate.runner import run_ablation
    from bnbench.analysis.tables import build_report

    result = ClaimsOutcome()
    for claim, ablation in planned:
        folder = out / claim.id
        with display(claim.id, ablation, folder) as listener:
            outcome = run_ablation(ablation, folder, jobs=jobs, listener=listener)
        result.outcomes[claim.id] = outcome
        if outcome.interrupted:
            result.interrupted = True
            break
        build_report(folder)
    return result


def finished_runs(ablation: Ablation, folder: Path) -> int:
    """How many of the ablation's runs are already finished in `folder`."""
    from bnbench.results import rundir
    from bnbench.results.layout import run_path

    return sum(rundir.is_done(rundir.run_state(run_path(folder, r.run_id))) for r in ablation.runs)


def describe(planned: list[tuple[Claim, Ablation]]) -> list[dict[str, Any]]:
    """One row per claim: its id and number of runs."""
    return [{"id": claim.id, "runs": len(ablation.runs)} for claim, ablation in planned]
