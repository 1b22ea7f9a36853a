"""Loading a claim's ablation (full or quick budget) and checking where the claims will run.

Each claim runs as an ordinary ablation into `OUT/<id>/` (`bnbench claims run`, in
`bnbench.cli.claims`, hands the ablations planned here to `bnbench.ablate.runner`), so a claims
run resumes like an ablation and every claim folder can be read by `bnbench report` and
`bnbench plot`. Nothing here runs anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from bnbench.claims import catalog
from bnbench.claims.claim import Claim
from bnbench.config.ablation import Ablation, AblationSpec, expand, load_ablation
from bnbench.config.loading import validate
from bnbench.config.yamlfile import load_yaml
from bnbench.errors import SpecError
from bnbench.results.files import atomic_write_text
from bnbench.results.layout import ABLATION, MANIFEST
from bnbench.results.tree_files import (
    PlannedRunRecord,
    StoredAblation,
    read_ablation,
    read_manifest,
    write_manifest,
)

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


def load_claim(claim: Claim, quick: bool, configs: Path = CONFIGS,
               seeds: list[int] | None = None) -> Ablation:  # fmt: skip
    """Read, validate and expand a claim's ablation, with its quick budget when `quick`.

    The full budget is the file as `bnbench ablate` loads it, so `bnbench ablate` and `bnbench
    plan` work on a claim's folder too.

    Args:
        claim: The claim.
        quick: Its quick budget (`Claim.quick`) instead of the file's.
        configs: The folder of claim ablations.
        seeds: The seeds to run instead of the budget's (`--seeds`).

    Raises:
        SpecError: the file, its base spec or an expanded run is invalid.
    """
    path = claim_path(claim, configs)
    data, _ = load_yaml(path)
    catalog.check_arms(claim, data, path)  # a user's own file too: before anything runs
    if not quick and seeds is None:
        return load_ablation(path)
    # The budget changes the data, so the file's line numbers no longer apply.
    data = claim.quick.apply(data) if quick else dict(data)
    if seeds is not None:
        data.pop("repeats", None)
        data["seeds"] = list(seeds)
    spec = validate(AblationSpec, data, None)
    if not isinstance(spec.base, str):
        raise SpecError(f"{path}: a claim's base must be a run spec file, not a mapping")
    base_path = (path.parent / spec.base).resolve()
    base, _ = load_yaml(base_path)
    # Resolved as `load_ablation` resolves the full budget.
    resolved = spec.model_dump(mode="json")
    resolved |= {"base": base, "seeds": spec.seed_list, "reference": spec.reference_arm}
    resolved.pop("repeats", None)
    return Ablation(spec, resolved, expand(spec, base, str(base_path)))


def claim_mode(claim: Claim, stored: StoredAblation | Mapping[str, Any],
               configs: Path = CONFIGS) -> Mode:  # fmt: skip
    """Whether a claim folder whose ablation.yaml holds `stored` (or a resolved ablation as a
    mapping) ran the claim's quick or full budget (with whichever seeds), or a changed one."""
    if not isinstance(stored, StoredAblation):
        stored = StoredAblation(stored)
    seeds = stored.seeds
    chosen = [int(s) for s in seeds] if isinstance(seeds, list) and seeds else None
    for quick in (True, False):
        try:
            if stored.data == load_claim(claim, quick, configs, chosen).resolved:
                return "quick" if quick else "full"
        except SpecError:  # the claim file itself no longer loads
            return "changed"
    return "changed"


def plan_claims(claims: list[Claim], out: Path, quick: bool, configs: Path = CONFIGS,
                seeds: list[int] | None = None, *, extend: bool = False
                ) -> list[tuple[Claim, Ablation]]:  # fmt: skip
    """Load every claim's ablation and check its folder before anything runs.

    Args:
        claims: The claims to run.
        out: The claims results directory.
        quick: The quick budget.
        configs: The folder of claim ablations.
        seeds: The seeds instead of the budget's. A folder run with fewer seeds, its seeds a
            prefix of these, is accepted: the runs of the added seeds train and the finished
            ones are kept (`--seeds 0-9` over a pass with seeds 0-5).
        extend: A folder holding the same ablation with fewer seeds (its seeds a prefix of
            `seeds`) or more (after a later round) is accepted: `--until-decided` adds seeds
            round by round, and takes each claim's current seeds from its looks.

    Raises:
        SpecError: an invalid claim file, `out` a file or an ablation's results tree, or a
            folder `OUT/<id>` that holds something else (another budget of the claim, say):
            then nothing has been written.
    """
    check_claims_out(out)
    planned = [(claim, load_claim(claim, quick, configs, seeds)) for claim in claims]
    for claim, ablation in planned:
        folder = out / claim.id
        stored = read_ablation(folder) if (folder / ABLATION).exists() else None
        if stored is not None and seeds_fit(stored.data, ablation.resolved, seeds, extend):
            continue
        if stored is not None and stored.data != ablation.resolved:
            other = claim_mode(claim, stored, configs)
            budget = "quick" if quick else "full"
            if other == budget:
                raise SpecError(
                    f"{folder}: holds claim {claim.id!r} run with seeds "
                    f"{seed_text(stored.seeds)}, not {seed_text(ablation.resolved['seeds'])};"
                    f" to resume it, give --seeds {seed_text(stored.seeds)} (to add seeds,"
                    " a list that starts with those); or choose another --out"
                )
            raise SpecError(
                f"{folder}: holds the {other} budget of claim {claim.id!r}, not the "
                f"{budget} one; choose another --out (or delete the folder to start over)"
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


def seeds_fit(stored: Mapping[str, Any], resolved: Mapping[str, Any],
              seeds: list[int] | None, extend: bool) -> bool:  # fmt: skip
    """Whether a folder's stored ablation may take `resolved`, which differs from it in seeds
    only: seeds asked for (`--seeds`) after the folder's own are added; with `extend`
    (`--until-decided`) a later round already under way, with more seeds, is accepted too."""
    if (seeds is not None or extend) and extends(stored, resolved):
        return True
    return extend and extends(resolved, stored)


def extends(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether the resolved ablation `after` is `before` with seeds added after its own."""
    old, new = before.get("seeds"), after.get("seeds")
    if not isinstance(old, list) or not isinstance(new, list) or new[: len(old)] != old:
        return False
    return {**before, "seeds": new} == after


def extend_folder(ablation: Ablation, folder: Path) -> None:
    """Record in `folder` that its ablation now has more seeds (`extends`): its ablation.yaml
    and the manifest's plan, so the runner and `bnbench status` see this round's runs. Does
    nothing to a folder holding anything else."""
    import yaml

    stored = read_ablation(folder).data if (folder / ABLATION).is_file() else None
    if stored is None or stored == ablation.resolved or not extends(stored, ablation.resolved):
        return
    manifest = read_manifest(folder)
    if manifest is not None:
        plan = [PlannedRunRecord(run_id=r.run_id, arm=r.arm, cell=r.cell, seed=r.seed)
                for r in ablation.runs]  # fmt: skip
        write_manifest(folder, manifest.model_copy(update={"runs": len(ablation.runs),
                                                           "plan": plan}))  # fmt: skip
    atomic_write_text(folder / ABLATION, yaml.safe_dump(ablation.resolved, sort_keys=False))


def seed_text(seeds: list[int]) -> str:
    """Seeds as `--seeds` takes them back, consecutive ones as ranges: "0-5,20", "7-7"."""
    parts: list[str] = []
    start = previous = None
    for seed in [*seeds, None]:
        if start is not None and (seed is None or seed != previous + 1):  # type: ignore[operator]
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if seed is not None and start is None:
            start = seed
        previous = seed
    if len(parts) == 1 and "-" not in parts[0]:  # "7" alone would read as a count
        return f"{parts[0]}-{parts[0]}"
    return ",".join(parts)


def parse_seeds(text: str) -> list[int]:
    """`--seeds`: a count N (seeds 0..N-1) or a list of seeds and ranges, "0-9,20".

    Raises:
        SpecError: not a count or a list of non-negative integers and increasing ranges, or a
            seed given twice; the message quotes the value.
    """
    words = [word.strip() for word in text.split(",")]
    if len(words) == 1 and words[0].isdigit():
        count = int(words[0])
        if count < 1:
            raise SpecError(f"--seeds {text!r}: a count must be at least 1")
        return list(range(count))
    seeds: list[int] = []
    for word in words:
        low, dash, high = word.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise SpecError(
                f"--seeds {text!r}: {word!r} is not a seed or a range of seeds; give a count "
                "(--seeds 6) or a list of non-negative seeds and ranges (--seeds 0-9,20)"
            )
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise SpecError(f"--seeds {text!r}: the range {word!r} runs backwards")
        seeds.extend(range(first, last + 1))
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise SpecError(f"--seeds {text!r}: seed(s) given twice: {seed_text(repeated)}")
    return seeds
