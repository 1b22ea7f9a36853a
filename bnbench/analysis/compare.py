"""Compare separately trained runs (`bnbench train` run directories): `bnbench compare`.

The runs are grouped by the config keys in which they differ (`bnbench.analysis.grouping`; the
seed never groups). A config is read as what the run trained with: its backend is the one that
ran (from summary.json: an ablation records `jax` where `bnbench train` records `auto`), and
its `diagnostics` section, which only says what to record, is left out (the notes name the
diagnostics keys that differ). Each group becomes an arm of the same summary and figures an ablation
gets: `bnbench.analysis.stats` for means, steps to target and paired differences,
`bnbench.analysis.tables` for the renderings, `bnbench.analysis.plots` for the figures. Groups are
compared with the reference group (the group of the first run given) seed by seed, over the
seeds both have: groups that share no seed get no paired difference, and the output says so.

Refused with a message naming the path (exit 2 from the CLI, nothing written): fewer than two
runs, a path given twice, a path that is not a run directory (or is an ablation's results tree),
a run without config.yaml (nothing to group it by), two runs with the same config and seed (one
run twice), and runs that differ in dataset, metric or target, whose scores and steps to target
do not compare. Failed and unfinished runs are kept: counted in their group's status columns,
named below the table, left out of every mean.

With `out`, the folder receives compare.json (what was compared, and the marker that makes the
folder a compare output, which a later compare may overwrite), runs.csv, summary.csv,
summary.md and plots/; a folder holding anything else is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bnbench import __version__
from bnbench.analysis.figure_options import OPTIONS_FILE, FigureOptions, choose_options
from bnbench.analysis.grouping import (
    ABSENT,
    Group,
    differing_keys,
    flatten,
    group_runs,
    model_keys,
    show,
)
from bnbench.analysis.plots import COMPARE_MARKER, INDEX, draw_plots
from bnbench.analysis.stats import SUMMARY_STATS, summarize
from bnbench.analysis.tables import Report, count_stalled, markdown_summary
from bnbench.errors import SpecError
from bnbench.results import rundir
from bnbench.results.files import (
    atomic_write_text,
    is_temp_name,
    read_mapping,
    write_csv,
    write_json,
)
from bnbench.results.layout import ABLATION, PLOTS_DIR, RUNS_CSV, RUNS_DIR, TABLES
from bnbench.results.rows import run_columns, run_row
from bnbench.results.tree import tree_from_runs

MARKER = COMPARE_MARKER  # in a compare output folder: what was compared, and which files
# Settings that must be equal in every run: scores on different data, metrics or targets do not
# compare (a paired difference across datasets would be a number without a meaning).
# The config section of what a run records beside training (activation percentiles, BN
# statistics...): it never changes the training, so it never groups runs; the notes name it.
DIAGNOSTICS = "diagnostics"
SAME = {
    "dataset": ("dataset.name", "dataset.path"),
    "target": ("training.target_metric", "training.target_value"),
}


@dataclass(frozen=True)
class Comparison:
    """The compared runs, their groups and summary, and the files written.

    Attributes:
        report: The summary: one row per group (its `arm` is the group label), one run row per
            run (with `path`), the reference group and the choices made.
        keys: The config keys the groups differ in.
        groups: The groups, the reference first.
        paths: Files written (empty without `out`).
    """

    report: Report
    keys: tuple[str, ...]
    groups: tuple[Group, ...]
    paths: list[Path] = field(default_factory=list)


def compare_runs(
    run_dirs: Sequence[Path], out: Path | None = None, fmt: str | None = None
) -> Comparison:
    """Group the runs, summarize each group, and with `out` write the tables and figures.

    Args:
        run_dirs: Run directories written by `bnbench train` (or inside an ablation's runs/).
        out: Folder for compare.json, runs.csv, summary.csv, summary.md and plots/: new, empty,
            or an earlier compare output (its files are replaced). None writes nothing.
        fmt: Figure format (png, svg, pdf); None: as last drawn in `out`, else png.

    Raises:
        SpecError: any refusal listed in the module docstring, an unusable `out` or `fmt`; the
            message names the path. Nothing is written then.
    """
    paths = _check_run_dirs(run_dirs)
    configs = [rundir.read_config(path) for path in paths]
    for path, config in zip(paths, configs, strict=True):
        if not config:
            raise SpecError(
                f"{path}: has no config.yaml, so there is nothing to group it by "
                "(it failed before its config was written); leave it out"
            )
    runs = [
        run_row(path) | {"run_id": name} for path, name in zip(paths, _names(paths), strict=True)
    ]
    settings = [_setting(config, run) for config, run in zip(configs, runs, strict=True)]
    _check_comparable(runs, settings)
    keys, groups = group_runs(settings)
    place = {group.label: i for i, group in enumerate(groups)}
    for group in groups:
        for index in group.members:
            runs[index].update(arm=group.label, cell="", path=str(paths[index].resolve()))
            runs[index].update({f"config.{key}": group.values[key] for key in keys})
    # Group by group (the reference first), seeds in order: the order `summarize` expects.
    ordered = sorted(runs, key=lambda r: (place[r["arm"]], r["seed"] is None, r["seed"] or 0))
    reference = groups[0].label
    metric = next((run["metric"] for run in runs if run["metric"]), None)
    rows = count_stalled(summarize(ordered, (), reference, metric), ordered, ())  # per group
    for row, group in zip(rows, groups, strict=True):
        row.update({f"config.{key}": group.values[key] for key in keys})
    notes = _notes(keys, groups, ordered, differing_keys([_recording(c) for c in configs]))
    arms = tuple(group.label for group in groups)
    folder = Path(out) if out is not None else Path(".")
    report = Report(folder, rows, ordered, arms, (), reference, metric, notes=notes, unit="group")
    comparison = Comparison(report, tuple(keys), tuple(groups))
    if out is None:
        if fmt is not None:
            raise SpecError("a figure format is used only with an output folder (--out)")
        return comparison
    _check_out(Path(out), paths)
    options = choose_options(Path(out) / PLOTS_DIR, format=fmt)
    comparison.paths.extend(_write(comparison, Path(out), options))
    return comparison


def _setting(config: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """What a run's scores depend on: its config with the backend that ran, without diagnostics.

    An ablation records the resolved backend (`jax`) where `bnbench train` records the spec's
    (`auto`), so the summary's backend, when known, stands for both; what is recorded
    (`DIAGNOSTICS`) is measured beside training and never changes it.
    """
    setting = {key: value for key, value in config.items() if key != DIAGNOSTICS}
    if run["backend"]:
        setting["backend"] = run["backend"]
    return setting


def _recording(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a config that `_setting` leaves out: what the run recorded."""
    return {DIAGNOSTICS: config[DIAGNOSTICS]} if DIAGNOSTICS in config else {}


def _check_run_dirs(run_dirs: Sequence[Path]) -> list[Path]:
    paths = [Path(p).expanduser() for p in run_dirs]
    if len(paths) < 2:
        raise SpecError(f"compare needs at least two run directories, got {len(paths)}")
    seen: dict[Path, Path] = {}
    for path in paths:
        if path.is_file():
            raise SpecError(f"{path} is a file, not a run directory")
        if not path.is_dir():
            raise SpecError(f"{path}: no such directory")
        if (path / RUNS_CSV).exists() or (path / RUNS_DIR).is_dir() or (path / ABLATION).exists():
            raise SpecError(
                f"{path} is an ablation's results tree, not a run directory: "
                f"`bnbench report {path}` summarizes it, or compare runs inside "
                f"{path / RUNS_DIR}"
            )
        if not any((path / marker).exists() for marker in sorted(rundir.MARKERS)):
            names = ", ".join(sorted(rundir.MARKERS))
            raise SpecError(f"{path} is not a run directory: it holds none of {names}")
        resolved = path.resolve()
        if resolved in seen:
            before = "" if seen[resolved] == path else f" (as {seen[resolved]} before)"
            raise SpecError(f"{path} is given twice{before}: a run counts once")
        seen[resolved] = path
    return paths


def _names(paths: list[Path]) -> list[str]:
    """A run id for each run: its folder's name, with parent folders when names repeat."""
    depth = [1] * len(paths)
    while True:
        names = ["/".join(p.resolve().parts[-d:]) for p, d in zip(paths, depth, strict=True)]
        repeated = {n for n in names if names.count(n) > 1}
        if not repeated:
            return names
        depth = [d + 1 if n in repeated else d for n, d in zip(names, depth, strict=True)]


def _check_comparable(runs: list[dict[str, Any]], configs: list[dict[str, Any]]) -> None:
    """Refuse runs whose scores do not compare, and one run given twice under two paths."""
    flats = [flatten(config) for config in configs]
    for what, keys in SAME.items():
        _same(what, [_shown(flat, keys) for flat in flats], runs)
    trained = [run for run in runs if run["status"] in ("completed", "diverged")]
    _same("metric", [str(run["metric"]) for run in trained], trained)
    settings: dict[str, str] = {}
    for run, flat in zip(runs, flats, strict=True):
        key = show({k: v for k, v in flat.items() if k != "name"})
        if key in settings:
            raise SpecError(
                f"{run['run_id']} and {settings[key]} have the same config and seed: "
                "the same run twice? a group's runs must differ by seed"
            )
        settings[key] = run["run_id"]


def _shown(flat: dict[str, Any], keys: tuple[str, ...]) -> str:
    """The settings `keys` of one run as the refusal shows them: only those that are set.

    E.g. "digits", "digits, path=/data/d.npz", "val_accuracy, target_value=0.5"; "unset" when
    none is.
    """
    parts = [(key, flat[key]) for key in keys if flat.get(key) is not None]
    shown = [
        show(value) if key == keys[0] else f"{key.rsplit('.', 1)[-1]}={show(value)}"
        for key, value in parts
    ]
    return ", ".join(shown) or "unset"


def _same(what: str, values: list[str], runs: list[dict[str, Any]]) -> None:
    found: dict[str, list[str]] = {}
    for value, run in zip(values, runs, strict=True):
        found.setdefault(value, []).append(run["run_id"])
    if len(found) > 1:
        listed = "; ".join(f"{value} ({', '.join(ids)})" for value, ids in found.items())
        raise SpecError(
            f"the runs differ in {what}: {listed}; their scores do not compare: "
            f"compare runs of one {what}"
        )


def _model_text(group: Group) -> str:
    chosen = model_keys(list(group.values))
    return ", ".join(f"{key}={show(group.values[key])}" for key in chosen)


def _notes(
    keys: list[str], groups: list[Group], runs: list[dict[str, Any]], recorded: list[str]
) -> dict[str, str]:
    """The choices behind the comparison, for the table's notes and summary.md.

    Args:
        keys: The grouping keys.
        groups: The groups, the reference first.
        runs: The run rows, with their group as `arm`.
        recorded: The `diagnostics.*` keys in which the runs differ (they never group).
    """
    notes = {}
    never = f"the seed, the name and {DIAGNOSTICS}.* never group runs"
    if keys:
        notes["groups"] = (
            f"runs grouped by the config keys in which they differ: {', '.join(keys)} "
            f"({never}; backend: the one that ran)"
        )
        if model_keys(keys):
            models = "; ".join(f"{group.label.split(',')[0]}: {_model_text(group)}"
                               for group in groups)  # fmt: skip
            notes["models"] = f"labels number the models, which differ in many keys ({models})"
    else:
        notes["groups"] = f"the runs differ only in their seed (and name): one group ({never})"
    if recorded:
        notes["diagnostics"] = (
            f"the runs differ in what they record ({', '.join(recorded)}), which does not "
            "change training: not grouped"
        )
    if any(value == ABSENT for group in groups for value in group.values.values()):
        notes["groups"] += (
            f"; {ABSENT}: the run's config lacks the key (written by another bnbench version?)"
        )
    reference = groups[0].label
    notes["reference"] = (
        f"{reference}, the group of the first run given (order the runs to pick it)"
    )
    seeds = {g.label: {r["seed"] for r in runs if r["arm"] == g.label} - {None} for g in groups}
    unpaired = [g.label for g in groups[1:] if not seeds[g.label] & seeds[reference]]
    notes["pairs"] = (
        "each group is compared with the reference seed by seed, over the seeds "
        "both have; a group sharing no seed with it gets no paired difference"
    )
    if unpaired:
        notes["pairs"] += f" (none shared: {'; '.join(unpaired)})"
    left = [f"{r['run_id']} ({r['status']})" for r in runs if r["status"] != "completed"]
    if left:
        notes["not completed"] = f"{', '.join(left)}: counted, left out of the means"
    return notes


def _check_out(out: Path, run_dirs: list[Path]) -> None:
    """Refuse an --out that is not a new, empty or earlier compare folder, or lies in a run."""
    resolved = out.resolve()
    for run_dir in run_dirs:
        if resolved == run_dir.resolve() or run_dir.resolve() in resolved.parents:
            raise SpecError(
                f"--out {out} is inside the run directory {run_dir}: choose a folder "
                "outside the runs"
            )
    if out.exists() and not out.is_dir():
        raise SpecError(f"--out {out} is a file, not a folder")
    if not out.is_dir() or (out / MARKER).is_file():
        return
    if any(not is_temp_name(entry.name) for entry in out.iterdir()):
        raise SpecError(
            f"--out {out} holds other files and is no `bnbench compare` output (it "
            f"has no {MARKER}); nothing is overwritten: choose a new or empty folder"
        )


def _write(comparison: Comparison, out: Path, options: FigureOptions) -> list[Path]:
    report, keys = comparison.report, [f"config.{key}" for key in comparison.keys]
    listed = read_mapping(out / MARKER).get("files")
    earlier = [str(name) for name in listed] if isinstance(listed, list) else []
    out.mkdir(parents=True, exist_ok=True)
    record = _record(comparison)
    write_json(out / MARKER, {**record, "files": earlier})  # marks the folder before the rest
    csv, md = TABLES["csv"], TABLES["md"]
    written = [out / RUNS_CSV, out / csv, out / md]
    write_csv(out / RUNS_CSV, report.runs, [*run_columns(()), *keys, "path"])
    write_csv(out / csv, report.rows, ["arm", *keys, *SUMMARY_STATS])
    title = f"comparison of {len(report.runs)} runs in {len(comparison.groups)} groups"
    atomic_write_text(out / md, markdown_summary(report, title))
    run_frame = pd.DataFrame(report.runs)
    by_id = {run["run_id"]: Path(run["path"]) for run in report.runs}
    tree = tree_from_runs(out, run_frame, by_id, list(report.arms), title=title)
    figures = draw_plots(tree, out / PLOTS_DIR, options)
    written += [*figures, out / PLOTS_DIR / INDEX, out / PLOTS_DIR / OPTIONS_FILE]
    names = [str(path.relative_to(out)) for path in written]
    for stale in set(earlier) - set(names):  # figures an earlier compare drew, say
        path = out / stale
        if path.parent in (out, out / PLOTS_DIR) and path.is_file() and not path.is_symlink():
            path.unlink()
    write_json(out / MARKER, {**record, "files": names})
    return [out / MARKER, *written]


def _record(comparison: Comparison) -> dict[str, Any]:
    report = comparison.report
    groups = [
        {
            "label": g.label,
            "values": g.values,
            "runs": [run["run_id"] for run in report.runs if run["arm"] == g.label],
        }
        for g in comparison.groups
    ]
    runs = [{k: run[k] for k in ("run_id", "path", "arm", "seed", "status")} for run in report.runs]
    return {
        "bnbench": __version__,
        "keys": list(comparison.keys),
        "reference": report.reference,
        "metric": report.metric,
        "score": report.score_label,
        "groups": groups,
        "runs": runs,
        "choices": report.choices,
        "definitions": report.definitions,
        "rows": report.rows,
    }
