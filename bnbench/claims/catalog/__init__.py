"""The claims bnbench tests: one module and one YAML file each, shipped with the package.

`<id>.py` declares the claim as `CLAIM` (its statement, source, what it measures, runtime,
`--quick` budget, the arms its rule reads, `assess` and `draw`); `<id>.yaml` is its ablation,
whose header quotes the statement. `IDS` lists them in report order; adding a claim is adding
its two files here and its id to `IDS`. `load` checks, when a claim loads, what must agree
between its module and its YAML: the module's id, the arms, and the statement.
"""

from __future__ import annotations

import importlib
import re
from importlib import resources
from pathlib import Path
from typing import Any

from bnbench.claims.claim import Claim
from bnbench.config.yamlfile import load_yaml
from bnbench.errors import SpecError

IDS = (
    "faster_training",
    "lr_range",
    "init_scale",
    "regularization",
    "vanishing_gradients",
    "depth",
    "small_batch",
    "small_batch_examples",
    "placement",
    "covariate_shift",
    "input_scaling",
    "train_inference_gap",
    "dropout_order",
    "ghost_batch",
    "shift_adaptation",
)


def folder() -> Path:
    """The folder of the shipped claim ablations (package data beside this module).

    Raises:
        SpecError: the package is not installed as files (a zip import), so the ablations,
            whose `base` is a path, cannot be read.
    """
    found = resources.files(__name__)
    if not isinstance(found, Path):
        raise SpecError(f"the claim ablations of {__name__} are not files on disk ({found})")
    return found


def load(claim_id: str, where: Path | None = None) -> Claim:
    """Import the claim's module and check it against its YAML.

    Args:
        claim_id: One of `IDS`.
        where: The folder holding the module's YAML (default: `folder()`).

    Raises:
        SpecError: the module has no `CLAIM` of its own id, or it disagrees with its YAML
            (`check`).
    """
    module = importlib.import_module(f"{__name__}.{claim_id}")
    claim = vars(module).get("CLAIM")
    if not isinstance(claim, Claim) or claim.id != claim_id:
        raise SpecError(f"{module.__file__}: must define CLAIM = Claim(id={claim_id!r}, ...)")
    check(claim, (where or folder()) / f"{claim_id}.yaml")
    return claim


def check(claim: Claim, path: Path) -> None:
    """Check that the claim's YAML quotes its statement and has every arm its rule reads.

    Raises:
        SpecError: the file is missing or unreadable, its header's first line does not quote
            the module's statement, or an arm of `claim.arms` or of its quick budget is not an
            arm of the file; the message names the file and what differs.
    """
    if not path.is_file():
        raise SpecError(f"claim {claim.id!r}: its ablation {str(path)!r} does not exist")
    quoted = header_statement(path, claim.id)
    if quoted != claim.statement:
        raise SpecError(
            f"{path}: the header quotes the claim as {quoted!r}, but its module states "
            f"{claim.statement!r}; make them the same"
        )
    data, _ = load_yaml(path)
    check_arms(claim, data, path)


def check_arms(claim: Claim, data: dict[str, Any], path: Path) -> None:
    """Check that the arms of `claim.arms` and of its quick budget are arms of the ablation
    `data` (read from `path`).

    Raises:
        SpecError: an arm is missing; the message lists the file's arms.
    """
    arms = data.get("arms")
    declared = [str(name) for name in arms] if isinstance(arms, dict) else []
    for words, wanted in (("its rule reads", claim.arms), ("its quick budget keeps",
                                                           claim.quick.arms)):  # fmt: skip
        missing = [arm for arm in wanted if arm not in declared]
        if missing:
            raise SpecError(
                f"{path}: claim {claim.id!r}: {words} the arm(s) {', '.join(missing)}, which "
                f"the file does not declare (its arms: {', '.join(declared) or 'none'})"
            )


def header_statement(path: Path, claim_id: str) -> str | None:
    """The statement the header of a claim's YAML quotes: its first comment lines read
    `# <id>: "<statement>"`, the quote possibly wrapped over `#   ` lines; None without one."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    match = re.match(rf'{re.escape(claim_id)}: "([^"]*)"', " ".join(lines))
    return match.group(1) if match else None
