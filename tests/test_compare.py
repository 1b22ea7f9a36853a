"""`bnbench compare`: separately trained runs grouped by the config keys in which they differ.

Hand-built run directories (written through the run-directory contract, no training) check the
grouping, the statistics and every refusal; one real pair of `bnbench train` runs checks the
whole path through the CLI.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from typer.testing import CliRunner

from bnbench.analysis.compare import MARKER, compare_runs
from bnbench.analysis.grouping import ABSENT, differing_keys, flatten, group_runs
from bnbench.cli import app
from bnbench.errors import SpecError
from bnbench.results import rundir
from tests.support.runs import _config, accuracy, write_run
from tests.support.specs import TINY_SPEC, files_under

runner = CliRunner()
def _grid(root: Path, norms=("batch", "none"), rates=(0.1,), seeds=(0, 1, 2)) -> list[Path]:
    return [
        write_run(root / f"{norm}-lr{rate}-s{seed}", seed, norm, rate)
        for norm in norms
        for rate in rates
        for seed in seeds
    ]


def _row(comparison, label: str) -> dict[str, Any]:
    (row,) = [row for row in comparison.report.rows if row["arm"] == label]
    return row


# --- grouping ----------------------------------------------------------------------------------


def test_flatten_uses_the_dotted_keys_of_set():
    flat = flatten({"model": {"blocks": [{"units": 8}, {"units": 4}], "norm": {}}, "seed": 1})
    assert flat == {"model.blocks.0.units": 8, "model.blocks.1.units": 4, "model.norm": {},
                    "seed": 1}  # fmt: skip


def test_seed_and_name_never_group_and_absent_keys_do():
    configs = [_config(0, "batch", 0.1), _config(1, "batch", 0.1), _config(0, "none", 0.1)]
    assert differing_keys(configs) == ["model.norm.kind"]
    configs[2]["model"]["blocks"].append({"type": "dense", "units": 4})
    keys, groups = group_runs(configs)
    assert keys == ["model.norm.kind", "model.blocks.1.type", "model.blocks.1.units"]
    assert [g.members for g in groups] == [(0, 1), (2,)]
    assert groups[0].values["model.blocks.1.units"] == ABSENT
    assert groups[0].label == (
        "model.norm.kind=batch, model.blocks.1.type=(absent), model.blocks.1.units=(absent)"
    )


def test_labels_show_values_as_set_takes_them_and_never_merge():
    keys, groups = group_runs([{"a": 0.1, "b": True}, {"a": "0.1", "b": None}])
    assert keys == ["a", "b"]
    assert len({g.label for g in groups}) == 2  # the string "0.1" is not the number 0.1
    _, groups = group_runs([{"x": 1e-05, "flag": False}, {"x": 0.1, "flag": True}])
    assert [g.label for g in groups] == ["x=1e-05, flag=false", "x=0.1, flag=true"]


# --- statistics --------------------------------------------------------------------------------


def test_groups_by_differing_keys_with_means_and_paired_differences(tmp_path):
    runs = _grid(tmp_path, rates=(0.1, 0.01))
    comparison = compare_runs(runs)
    assert comparison.keys == ("model.norm.kind", "training.learning_rate")
    labels = [g.label for g in comparison.groups]
    assert labels == [
        "model.norm.kind=batch, training.learning_rate=0.1",
        "model.norm.kind=batch, training.learning_rate=0.01",
        "model.norm.kind=none, training.learning_rate=0.1",
        "model.norm.kind=none, training.learning_rate=0.01",
    ]
    report = comparison.report
    assert report.reference == labels[0] and report.unit == "group"
    row = _row(comparison, labels[2])
    theirs = [accuracy(seed, "none", 0.1) for seed in (0, 1, 2)]
    ours = [accuracy(seed, "batch", 0.1) for seed in (0, 1, 2)]
    assert row["n"] == 3 and row["completed"] == 3
    assert row["final_test_mean"] == pytest.approx(np.mean(theirs))
    assert row["final_test_std"] == pytest.approx(np.std(theirs, ddof=1))
    test = scipy_stats.ttest_rel(theirs, ours)
    low, high = test.confidence_interval(0.95)
    assert row["n_pairs"] == 3 and row["diff_mean"] == pytest.approx(
        np.mean(theirs) - np.mean(ours)
    )
    assert (row["diff_ci_low"], row["diff_ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert row["reached"] == 3 and row["steps_to_target_mean"] == 20
    assert "seed" not in report.notes["groups"].split(":")[1].split("(")[0]
    assert "the group of the first run given" in report.notes["reference"]


def test_the_first_run_given_picks_the_reference(tmp_path):
    runs = _grid(tmp_path)
    comparison = compare_runs([runs[3], *runs[:3], *runs[4:]])
    assert comparison.report.reference == "model.norm.kind=none"
    ours, theirs = ([accuracy(s, norm, 0.1) for s in (0, 1, 2)] for norm in ("batch", "none"))
    assert _row(comparison, "model.norm.kind=batch")["diff_mean"] == pytest.approx(
        np.mean(ours) - np.mean(theirs)
    )


def test_groups_sharing_no_seed_get_no_paired_difference(tmp_path):
    runs = [write_run(tmp_path / f"b{s}", s, "batch") for s in (0, 1)]
    runs += [write_run(tmp_path / f"n{s}", s, "none") for s in (2, 3)]
    comparison = compare_runs(runs)
    row = _row(comparison, "model.norm.kind=none")
    assert row["n_pairs"] == 0 and row["diff_mean"] is None and row["p_value"] is None
    assert row["final_test_mean"] is not None  # the group's own mean is still there
    assert "none shared: model.norm.kind=none" in comparison.report.notes["pairs"]


def test_failed_and_unfinished_runs_are_counted_named_and_never_averaged(tmp_path):
    runs = _grid(tmp_path, seeds=(0, 1))
    runs.append(write_run(tmp_path / "none-s2", 2, "none", status="failed"))
    runs.append(write_run(tmp_path / "none-s3", 3, "none", status="incomplete"))
    runs.append(write_run(tmp_path / "none-s4", 4, "none", reached=None))
    comparison = compare_runs(runs)
    row = _row(comparison, "model.norm.kind=none")
    assert (row["n"], row["completed"], row["failed"], row["incomplete"]) == (5, 3, 1, 1)
    expected = [accuracy(seed, "none", 0.1) for seed in (0, 1, 4)]
    assert row["final_test_n"] == 3 and row["final_test_mean"] == pytest.approx(np.mean(expected))
    assert row["reached"] == 2 and row["steps_to_target_censored"] == 1  # s4 never reached it
    note = comparison.report.notes["not completed"]
    assert "none-s2 (failed)" in note and "none-s3 (incomplete)" in note


def test_runs_that_differ_only_by_seed_are_one_group(tmp_path):
    comparison = compare_runs(_grid(tmp_path, norms=("batch",)))
    assert comparison.keys == () and [g.label for g in comparison.groups] == ["all runs"]
    assert comparison.report.rows[0]["n"] == 3
    assert "differ only in their seed" in comparison.report.notes["groups"]


def test_the_backend_that_ran_groups_runs_not_the_configs_auto(tmp_path):
    # `bnbench train` records `backend: auto`, an ablation the resolved `jax`: the same setting.
    runs = [write_run(tmp_path / "train-s0", 0, backend="auto"), write_run(tmp_path / "abl-s1", 1)]
    comparison = compare_runs(runs)
    assert comparison.keys == () and comparison.report.rows[0]["n"] == 2
    # Runs that really ran on two backends are two groups, labelled by the backend that ran.
    runs.append(write_run(tmp_path / "tf-s0", 0, ran="tensorflow", backend="auto"))
    comparison = compare_runs(runs)
    assert [g.label for g in comparison.groups] == ["backend=jax", "backend=tensorflow"]
    assert "backend: the one that ran" in comparison.report.notes["groups"]


def test_diagnostics_keys_never_group_and_are_named_in_a_note(tmp_path):
    every = {"diagnostics__activation_percentiles__every": 10}
    runs = [write_run(tmp_path / "plain-s0", 0), write_run(tmp_path / "diag-s1", 1, **every)]
    comparison = compare_runs([*runs, write_run(tmp_path / "none-s0", 0, "none", **every)])
    assert comparison.keys == ("model.norm.kind",)
    assert [len(g.members) for g in comparison.groups] == [2, 1]
    notes = comparison.report.notes
    assert "diagnostics.* never group runs" in notes["groups"]
    assert "diagnostics.activation_percentiles.every" in notes["diagnostics"]
    # Same seed, differing only in what was recorded: one run twice, not two groups.
    with pytest.raises(SpecError, match="same config and seed"):
        compare_runs([runs[0], write_run(tmp_path / "diag-s0", 0, **every)])


def test_one_group_prints_a_sentence_not_an_empty_paired_table(tmp_path):
    runs = [str(r) for r in _grid(tmp_path / "runs", norms=("batch",), seeds=(0, 1))]
    result = runner.invoke(app, ["compare", *runs, "--out", str(tmp_path / "cmp")],
                           terminal_width=200)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "One group: nothing to pair." in result.output
    assert "paired over seeds against" not in result.output
    markdown = (tmp_path / "cmp" / "summary.md").read_text()
    assert "★" not in markdown and "best cell" not in markdown  # no grid: nothing is marked
    assert "best cell" not in json.loads((tmp_path / "cmp" / MARKER).read_text())["definitions"]


def test_repeated_folder_names_get_distinct_run_ids(tmp_path):
    runs = [write_run(tmp_path / "a" / "run", 0), write_run(tmp_path / "b" / "run", 1)]
    ids = [run["run_id"] for run in compare_runs(runs).report.runs]
    assert ids == ["a/run", "b/run"]


# --- files ---------------------------------------------------------------------------------------


def test_out_gets_tables_figures_and_a_record(tmp_path):
    runs = _grid(tmp_path / "runs")
    out = tmp_path / "cmp"
    comparison = compare_runs(runs, out=out)
    record = json.loads((out / MARKER).read_text())
    assert sorted(record["files"]) == sorted(str(p.relative_to(out)) for p in comparison.paths[1:])
    assert record["reference"] == "model.norm.kind=batch" and record["keys"] == ["model.norm.kind"]
    assert [g["runs"] for g in record["groups"]][1] == ["none-lr0.1-s0", "none-lr0.1-s1",
                                                        "none-lr0.1-s2"]  # fmt: skip
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns[:3]) == ["arm", "config.model.norm.kind", "n"]
    assert list(summary["config.model.norm.kind"]) == ["batch", "none"]
    assert pd.read_csv(out / "runs.csv")["path"].tolist() == [str(p.resolve()) for p in runs]
    markdown = (out / "summary.md").read_text()
    assert "Reference group: `model.norm.kind=batch`" in markdown and "| group |" in markdown
    index = (out / "plots" / "index.md").read_text()
    assert "[learning_curves_step.png]" in index and "Drawn as png" in index
    assert (out / "plots" / "learning_curves_step.png").read_bytes().startswith(b"\x89PNG")
    assert not any(p.name not in rundir.RUN_FILES for r in runs for p in r.iterdir())


def test_a_later_compare_replaces_its_own_output_and_remembers_the_format(tmp_path):
    runs = _grid(tmp_path / "runs")
    out = tmp_path / "cmp"
    compare_runs(runs, out=out, fmt="svg")
    (out / "notes.txt").write_text("mine\n")  # a user's file in a compare folder is left alone
    compare_runs(runs[:2] + runs[3:5], out=out)  # no format: the one last drawn
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert all(not name.endswith(".png") for name in plots) and "overview.svg" in plots
    assert "Drawn as svg" in (out / "plots" / "index.md").read_text()
    assert len(pd.read_csv(out / "runs.csv")) == 4 and (out / "notes.txt").is_file()
    compare_runs(runs, out=out, fmt="png")  # a new format: the svg figures are not left behind
    assert not list((out / "plots").glob("*.svg"))


# --- refusals (CLI: exit 2, the message, nothing written) ---------------------------------------


def _refused(tmp_path: Path, args: list[str], *fragments: str) -> None:
    before = {p: p.read_bytes() for p in files_under(tmp_path)}
    result = runner.invoke(app, ["compare", *args])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in text, text
    assert "Traceback" not in result.output
    assert {p: p.read_bytes() for p in files_under(tmp_path)} == before
    assert not (tmp_path / "out").exists()


def test_fewer_than_two_runs_are_refused(tmp_path):
    run = write_run(tmp_path / "r0", 0)
    _refused(tmp_path, [str(run)], "at least two run directories, got 1")
    _refused(tmp_path, [str(run), str(run), "--out", str(tmp_path / "out")], "given twice")


def test_paths_that_are_not_finished_run_directories_are_named(tmp_path):
    run = write_run(tmp_path / "r0", 0)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    _refused(tmp_path, [str(run), str(tmp_path / "notes")], f"{tmp_path / 'notes'} is not a run")
    _refused(tmp_path, [str(run), str(tmp_path / "nowhere")], "nowhere: no such directory")
    _refused(tmp_path, [str(run), str(tmp_path / "notes" / "a.txt")],
             f"{tmp_path / 'notes' / 'a.txt'} is a file, not a run directory")  # fmt: skip
    ablation = tmp_path / "abl"
    write_run(ablation / "runs" / "x", 1)
    (ablation / "runs.csv").write_text("run_id,arm\nx,a\n")
    _refused(tmp_path, [str(run), str(ablation)], "is an ablation's results tree", "report")
    lone = tmp_path / "lone"
    rundir.record_failure(lone, RuntimeError("no data"))  # failed before its config was written
    _refused(tmp_path, [str(run), str(lone)], "has no config.yaml")


def test_the_same_run_twice_is_refused(tmp_path):
    run = write_run(tmp_path / "r0", 0)
    shutil.copytree(run, tmp_path / "copy")
    _refused(tmp_path, [str(run), str(tmp_path / "copy")], "same config and seed")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"dataset__name": "mnist"}, "differ in dataset: mnist (b1); digits (b0);"),
        ({"dataset__path": "/data/d.npz"}, "dataset: digits, path=/data/d.npz (b1); digits (b0)"),
        ({"training__target_value": 0.8}, "differ in target"),
        ({"metric": None}, "differ in metric"),
    ],
)
def test_runs_whose_scores_do_not_compare_are_refused(tmp_path, change, fragment):
    first = write_run(tmp_path / "b0", 0)
    other = write_run(tmp_path / "b1", 1, **change)
    _refused(tmp_path, [str(other), str(first), "--out", str(tmp_path / "out")], fragment)


def test_out_must_be_new_empty_or_an_earlier_compare(tmp_path):
    runs = [str(write_run(tmp_path / f"r{s}", s)) for s in (0, 1)]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "paper.tex").write_text("keep me\n")
    _refused(tmp_path, [*runs, "--out", str(mine)], "no `bnbench compare` output")
    _refused(tmp_path, [*runs, "--out", str(tmp_path / "r0" / "cmp")], "inside the run directory")
    _refused(tmp_path, [*runs, "--out", str(mine / "paper.tex")], "is a file")
    _refused(tmp_path, [*runs, "--format", "svg"], "only with an output folder")
    with pytest.raises(SpecError, match="unknown figure format 'bmp'"):
        compare_runs([Path(r) for r in runs], out=tmp_path / "out", fmt="bmp")
    assert not (tmp_path / "out").exists()


# --- a real pair ---------------------------------------------------------------------------------


def test_two_trained_runs_compare_through_the_cli(tmp_path, write_spec):
    outs = []
    for kind in ("batch", "none"):
        spec = copy.deepcopy(TINY_SPEC)
        spec["model"]["norm"]["kind"] = kind
        spec["name"] = f"tiny_{kind}"
        out = tmp_path / kind
        result = runner.invoke(app, ["train", str(write_spec(spec, f"{kind}.yaml")), "--out",
                                     str(out), "-q", "--no-save-model"])  # fmt: skip
        assert result.exit_code == 0, result.output
        outs.append(str(out))
    result = runner.invoke(
        app, ["compare", *outs, "--out", str(tmp_path / "cmp")], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "model.norm.kind=batch" in result.output and "model.norm.kind=none" in result.output
    summary = pd.read_csv(tmp_path / "cmp" / "summary.csv")
    assert summary["n_pairs"].tolist()[1] == 1  # same seed: one pair
    written = json.loads((tmp_path / "batch" / rundir.SUMMARY).read_text())
    assert summary["final_test_mean"][0] == pytest.approx(written["final"]["test_accuracy"])
    assert (tmp_path / "cmp" / "plots" / "learning_curves_step.png").is_file()


def test_compare_is_listed_and_has_help():
    assert "compare" in runner.invoke(app, ["--help"]).output
    result = runner.invoke(app, ["compare", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "never the seed" in " ".join(result.output.split())
