"""Retargeting a claim: its shipped ablation turned, by rule, into the ablation to run on other
data (`claims run --dataset NAME`) or on a user's own run spec (`claims run --base SPEC`).

The rule, claim by claim, reads what the claim declares (`Claim.family`, `fixes_data`, `keeps`):
- the data: the dataset section is replaced (the claim's own `dataset.*` overrides, such as
  regularization's small subset, stay); a dense-first network gets its inputs flattened;
- the network: with `--dataset` the claim keeps its own (the shipped MLP, or the family it
  fixes); with `--base` it takes the user's, and the YAML's network tuning (`TUNING`) gives way
  unless the claim `keeps` it; references to `model.blocks.<i>` count from the end of the
  user's dense/conv blocks. A claim that fixes its family or its data, or whose ablation does
  not expand on that network, is skipped with the reason, never dropped;
- the budget: the shipped length in steps is read as passes over the shipped data and turned
  into steps for the new data (`bnbench.analysis.budget.epoch_budget`), with as many
  evaluations per run as the shipped ablation has;
- the target: an absolute `training.target_value` is removed; claims that time a target derive
  it from the runs' histories (`bnbench.claims.relative`).
Nothing here trains or writes.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnbench.claims.claim import Claim
from bnbench.claims.plan import CONFIGS, claim_path
from bnbench.config.ablation import Ablation, AblationSpec, expand
from bnbench.config.loading import apply_overrides, validate
from bnbench.config.registries import DATASET_NAMES, suggest
from bnbench.config.schema import DatasetSpec, RunSpec
from bnbench.config.yamlfile import load_yaml
from bnbench.errors import SpecError

# Keys of a shipped claim YAML that tune its MLP rather than pose its question: on a user's
# network they give way to the user's own choices (unless the claim `keeps` one).
TUNING = ("model.activation", "model.initializer", "model.blocks", "training.learning_rate",
          "training.optimizer", "training.momentum")  # fmt: skip
Arms = dict[str, dict[str, Any]]
RECORD = "retarget.json"  # OUT/retarget.json: what a retargeted run derived and skipped
BLOCK_KEY = re.compile(r"^model\.blocks\.(\d+)\.(.+)$")
WEIGHTED = ("dense", "conv2d")


@dataclass(frozen=True)
class Onto:
    """What claims are retargeted onto: a dataset (`--dataset`) or a user's run spec (`--base`).

    Attributes:
        label: The command-line words, e.g. "--dataset mnist".
        dataset: The dataset section that replaces the shipped one (with `--dataset`).
        base: The user's run spec as plain data, validated (with `--base`).
    """

    label: str
    dataset: dict[str, Any] | None = None
    base: dict[str, Any] | None = None


@dataclass(frozen=True)
class Retargeted:
    """A claim's ablation on the new data or network, and how it was derived."""

    claim: Claim
    ablation: Ablation
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Skipped:
    """A claim that cannot run on the new data or network, and why."""

    claim: Claim
    reason: str


def onto_dataset(name: str, path: Path | None) -> Onto:
    """The target of `--dataset NAME` (`--dataset-path` for npz).

    Raises:
        SpecError: an unknown name (with the closest one), npz without a path, or a path with
            another dataset.
    """
    if name not in DATASET_NAMES:
        raise SpecError(f"--dataset: unknown dataset {name!r}{suggest(name, DATASET_NAMES)}; "
                        f"available: {', '.join(DATASET_NAMES)}")  # fmt: skip
    if name == "npz" and path is None:
        raise SpecError("--dataset npz needs --dataset-path FILE.npz (x_train, y_train, x_test, "
                        "y_test)")  # fmt: skip
    if path is not None and name != "npz":
        raise SpecError(f"--dataset-path is for --dataset npz, not {name!r}")
    section: dict[str, Any] = {"name": name, "validation_split": 0.1, "normalize": "scale"}
    if path is not None:
        if not path.is_file():
            raise SpecError(f"--dataset-path {path}: no such file")
        section["path"] = str(path.resolve())
    return Onto(f"--dataset {name}", dataset=section)


def onto_base(path: Path) -> Onto:
    """The target of `--base SPEC`: the user's run spec, validated.

    Raises:
        SpecError: the file is missing or not a valid run spec.
    """
    data, where = load_yaml(path)
    validate(RunSpec, data, where)
    return Onto(f"--base {path}", base=data)


def retarget(claim: Claim, quick: bool, onto: Onto, configs: Path = CONFIGS,
             sizes: dict[str, int] | None = None,
             seeds: list[int] | None = None) -> Retargeted | Skipped:  # fmt: skip
    """The claim's ablation (its quick budget when `quick`) on `onto`, or why it cannot run.

    `sizes` caches the training-set sizes read to scale budgets, across the claims of a plan;
    `seeds` replace the budget's (`--seeds`).

    Raises:
        SpecError: the shipped ablation itself is invalid, or the data cannot be read to size
            the budget (a Keras dataset not downloaded yet, say).
    """
    if claim.fixes_data is not None:
        return Skipped(claim, f"keeps its own data: {claim.fixes_data}")
    if onto.base is not None and claim.family is not None:
        return Skipped(claim, f"is about a network it fixes ({claim.family}), not yours; "
                              "it runs on your data with --dataset")  # fmt: skip
    path = claim_path(claim, configs)
    data, _ = load_yaml(path)
    if quick:
        data = claim.quick.apply(data)
    if seeds is not None:
        data = {k: v for k, v in data.items() if k != "repeats"} | {"seeds": list(seeds)}
    shipped, _ = load_yaml(path.parent / str(data["base"]))
    overrides = dict(data.get("overrides") or {})
    arms = {name: dict(values or {}) for name, values in (data.get("arms") or {}).items()}
    grid = dict(data.get("grid") or {})
    notes: list[str] = []
    if onto.base is not None:
        base = copy.deepcopy(onto.base)
        dropped = [k for k in overrides if _tuning(k) and k not in claim.keeps]
        for key in dropped:
            del overrides[key]
        if dropped:
            notes.append(f"your network's own {', '.join(dropped)} (the shipped MLP's tuning "
                         "was dropped)")  # fmt: skip
        try:
            overrides, arms, grid = _remap_blocks(base, shipped, overrides, arms, grid)
        except SpecError as err:
            return Skipped(claim, str(err))
    else:
        base = copy.deepcopy(shipped)
        assert onto.dataset is not None
        first = base["model"]["blocks"][0]["type"]
        base["dataset"] = {**onto.dataset, "flatten": first == "dense"}
    for key in ("target_metric", "target_value"):
        base.get("training", {}).pop(key, None)
        overrides.pop(f"training.{key}", None)
    notes += _scale_budget(shipped, base, overrides, {} if sizes is None else sizes)
    retargeted = {**data, "base": base, "overrides": overrides, "arms": arms}
    if grid:
        retargeted["grid"] = grid
    try:
        spec = validate(AblationSpec, retargeted, None)
        runs = expand(spec, base, onto.label)
    except SpecError as err:
        if onto.base is None:
            raise
        return Skipped(claim, f"does not fit your spec: {err}")
    resolved = spec.model_dump(mode="json")
    resolved |= {"base": base, "seeds": spec.seed_list, "reference": spec.reference_arm}
    resolved.pop("repeats", None)
    return Retargeted(claim, Ablation(spec, resolved, runs), notes)


def _tuning(key: str) -> bool:
    return any(key == t or key.startswith(f"{t}.") for t in TUNING)


def _remap_blocks(base: dict[str, Any], shipped: dict[str, Any], overrides: dict[str, Any],
                  arms: dict[str, dict[str, Any]], grid: dict[str, list[Any]]
                  ) -> tuple[dict[str, Any], Arms, dict[str, list[Any]]]:  # fmt: skip
    """`model.blocks.<i>.*` keys moved from the shipped network's dense/conv blocks to the
    user's, counting from the end (the last hidden block stays the last).

    Raises:
        SpecError: the user's network has fewer dense/conv blocks than a key reaches.
    """
    mine = [i for i, b in enumerate(base["model"]["blocks"]) if b.get("type") in WEIGHTED]
    theirs = [i for i, b in enumerate(shipped["model"]["blocks"]) if b.get("type") in WEIGHTED]

    def move(key: str) -> str:
        match = BLOCK_KEY.match(key)
        if match is None:
            return key
        index = int(match.group(1))
        place = len(mine) - len(theirs) + theirs.index(index) if index in theirs else -1
        if place < 0:
            raise SpecError(
                f"needs block {index} of the shipped MLP ({len(theirs)} dense blocks) on yours, "
                f"which has {len(mine)} dense/conv block(s)"
            )
        return f"model.blocks.{mine[place]}.{match.group(2)}"

    return ({move(k): v for k, v in overrides.items()},
            {arm: {move(k): v for k, v in values.items()} for arm, values in arms.items()},
            {move(k): v for k, v in grid.items()})  # fmt: skip


def _scale_budget(shipped: dict[str, Any], base: dict[str, Any], overrides: dict[str, Any],
                  sizes: dict[str, int]) -> list[str]:  # fmt: skip
    """Turn the shipped length in steps into the same passes over the new data (in place).

    Returns:
        The derivation in words, for the report.
    """
    from bnbench.analysis.budget import epoch_budget

    steps = overrides.get("training.steps")
    if steps is None:
        epochs = overrides.get("training.epochs", shipped["training"].get("epochs"))
        base.setdefault("training", {}).pop("steps", None)
        overrides.setdefault("training.epochs", epochs)
        words = f"{epochs:g} epochs, as shipped (a length in passes already follows the data)"
        # Evaluated as often per pass as shipped: on 40x the examples, every 40x the steps
        # (evaluating every shipped 20 steps on MNIST would make 2,700 evaluations a run).
        every = overrides.get("training.eval_every", shipped["training"].get("eval_every"))
        if every is None:
            return [words]
        before = _size(_data(shipped, overrides), sizes)
        after = _size(_data(base, overrides), sizes)
        scaled = max(1, round(int(every) * after / before))
        overrides["training.eval_every"] = scaled
        return [f"{words}, evaluated every {scaled:,} steps (the shipped {every} steps over its "
                f"{before:,} training examples, scaled to {after:,})"]  # fmt: skip
    evaluations = max(1, round(steps / int(overrides.get("training.eval_every", steps))))
    batch = int(overrides.get("training.batch_size", shipped["training"]["batch_size"]))
    before = _size(_data(shipped, overrides), sizes)
    epochs = steps * batch / before
    after_batch = int(overrides.get("training.batch_size",
                                    base.get("training", {}).get("batch_size", batch)))  # fmt: skip
    budget = epoch_budget(epochs, _size(_data(base, overrides), sizes), after_batch, evaluations)
    overrides["training.steps"] = budget.steps
    overrides["training.eval_every"] = budget.eval_every
    return [f"budget {budget.describe()}; {epochs:.3g} epochs = the shipped {steps} steps at "
            f"batch {batch} over its {before:,} training examples"]  # fmt: skip


def _size(dataset: DatasetSpec, sizes: dict[str, int]) -> int:
    """Training examples of a dataset section, read once per plan (`sizes` keeps them)."""
    from bnbench.demos.landscape import training_split  # claims read data via the demos room

    key = dataset.model_dump_json()
    if key not in sizes:
        sizes[key] = len(training_split(dataset)[0])
    return sizes[key]


def _data(spec: dict[str, Any], overrides: dict[str, Any]) -> DatasetSpec:
    """The dataset section of `spec` with the `dataset.*` overrides applied."""
    keys = [(k, v) for k, v in overrides.items() if k.startswith("dataset.")]
    return RunSpec.model_validate(apply_overrides(spec, keys, RunSpec)).dataset


def plan_retargeted(claims: list[Claim], out: Path, quick: bool, onto: Onto,
                    configs: Path = CONFIGS, seeds: list[int] | None = None, *,
                    extend: bool = False, sizes: dict[str, int] | None = None
                    ) -> tuple[list[Retargeted], list[Skipped]]:  # fmt: skip
    """Retarget every claim and check its folder before anything runs (reads only).

    Args:
        claims, out, quick, onto, configs, seeds: As `retarget`, into `OUT/<id>/`.
        extend: As `bnbench.claims.plan.plan_claims`'s: a folder holding the same ablation
            with fewer seeds, or more (a later round of `--until-decided`), is accepted; with
            `seeds` given, one holding a prefix of them is accepted too (they are added).
        sizes: Training-set sizes already read (`retarget`), kept across calls.

    Raises:
        SpecError: as `retarget`; `out` a file or an ablation's tree; a claim folder that
            holds another ablation (another dataset or budget of the claim).
    """
    from bnbench.claims.plan import check_claims_out, seeds_fit
    from bnbench.results.layout import ABLATION
    from bnbench.results.tree_files import read_ablation

    check_claims_out(out)
    sizes = {} if sizes is None else sizes
    done = [retarget(claim, quick, onto, configs, sizes, seeds) for claim in claims]
    planned = [r for r in done if isinstance(r, Retargeted)]
    for entry in planned:
        folder = out / entry.claim.id
        if folder.exists() and not folder.is_dir():
            raise SpecError(f"{folder}: exists and is not a folder")
        stored = read_ablation(folder) if (folder / ABLATION).exists() else None
        resolved = entry.ablation.resolved
        if stored is not None and seeds_fit(stored.data, resolved, seeds, extend):
            continue
        if stored is not None and stored.data != resolved:
            raise SpecError(
                f"{folder}: holds another ablation of claim {entry.claim.id!r} (other data, "
                "network or budget); choose another --out (or delete the folder to start over)"
            )
    return planned, [s for s in done if isinstance(s, Skipped)]


def record(onto: Onto, quick: bool, planned: list[Retargeted], skipped: list[Skipped]
           ) -> dict[str, Any]:  # fmt: skip
    """What `OUT/retarget.json` keeps of a retargeted run, for the report."""
    return {
        "onto": onto.label,
        "budget": "quick" if quick else "full",
        "notes": {r.claim.id: r.notes for r in planned},
        "skipped": {s.claim.id: s.reason for s in skipped},
    }


def read_record(out: Path) -> dict[str, Any] | None:
    """`OUT/retarget.json` when the claims in `out` were retargeted, else None."""
    from bnbench.results.files import read_mapping

    path = out / RECORD
    return read_mapping(path) if path.is_file() else None


def record_markdown(found: dict[str, Any] | None) -> str:
    """The report's section on a retargeted run: onto what, each claim's derived budget and
    target, and the claims skipped with their reasons ("" when not retargeted)."""
    if found is None:
        return ""
    lines = ["", f"## Retargeted: {found['onto']} ({found['budget']} budget)", "",
             "No absolute target: the shipped `training.target_value` is removed; a claim that "
             "times a target derives it from the runs' histories (its sentences state it).",
             ""]  # fmt: skip
    lines += [f"- {cid}: {'; '.join(notes)}" for cid, notes in found["notes"].items()]
    if found["skipped"]:
        lines += ["", "Skipped (they cannot apply here):", ""]
        lines += [f"- {cid}: {reason}" for cid, reason in found["skipped"].items()]
    return "\n".join(lines) + "\n"
