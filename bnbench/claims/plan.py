"""Loading a claim's ablation (full or quick budget) and checking where the claims will run.

Each claim runs as an ordinary ablation into `OUT/<id>/` (`bnbench claims run`, in
`bnbench.cli.claims`, hands the ablations planned here to `bnbench.ablate.runner`), so a claims
run resumes like an ablation and every claim folder can be read by `bnbench report` and
`bnbench plot`. Nothing here runs anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from bnbench.claims import catalog
from bnbench.claims.claim import Claim
from bnbench.config.ablation import Ablation, AblationSpec, expand, load_ablation
from bnbench.config.loading import validate
from bnbench.config.yamlfile import load_yaml
from bnbench.errors import SpecError
from bnbench.results.files import read_mapping
from bnbench.results.layout import ABLATION, MANIFEST

# The shipped claim ablations: package data of `bnbench.claims.catalog`, so an installed
# bnbench has them; `--configs` points `claims run` and `claims report` at a folder of one's own.
CONFIGS = catalog.folder()
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
    data, _ = load_yaml(path)
    catalog.check_arms(claim, data, path)  # a user's own file too: before anything runs
    if not quick:
        return load_ablation(path)
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


def claim_mode(claim: Claim, stored: dict[str, Any], configs: Path = CONFIGS) -> Mode:
    """Whether a claim folder whose ablation.yaml holds `stored` ran the claim's quick or full
    budget, or a changed ablation."""
    for quick in (True, False):
        try:
            if stored == load_claim(claim, quick, configs).resolved:
                return "quick" if quick else "full"
        except SpecError:  # the claim file itself no longer loads
            return "changed"
    return "changed"


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
        stored = read_mapping(folder / ABLATION) if (folder / ABLATION).exists() else None
        if stored is not None and stored != ablation.resolved:
            other = claim_mode(claim, stored, configs)
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
    if out.exists() and not out.is_dir():
        raise SpecError(f"--out {out} is a file, not a folder")
    found = [name for name in (ABLATION, MANIFEST) if (out / name).exists()]
    if found:
        where = (f" (the folder of claim {out.name!r}: give its parent, {out.parent})"
                 if out.name in catalog.IDS else "")  # fmt: skip
        raise SpecError(
            f"{out} holds an ablation ({found[0]}){where}; choose another --out for claims"
        )
