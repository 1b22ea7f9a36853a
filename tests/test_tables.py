"""Summary tables rebuild from a hand-written results tree: no training, no Keras."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from rich.console import Console
from scipy import stats as scipy_stats
from scipy.stats import gmean

from bnbench.analysis.multiplicity import adjust
from bnbench.analysis.paired import paired_difference
from bnbench.analysis.tables import build_report, render_table
from bnbench.errors import SpecError
from bnbench.results.rows import RUN_COLUMNS
from tests.support.specs import write_summary
from tests.support.tables_tree import (
    ARMS,
    KEY,
    LEARNING_RATES,
    REFERENCE,
    SEEDS,
    _accuracy,
    write_tree,
)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, dict]]:
    root = tmp_path / "ablation"
    return root, write_tree(root)


def _row(report, arm: str, learning_rate: float) -> dict:
    (row,) = [r for r in report.rows if r["arm"] == arm and r[f"grid.{KEY}"] == learning_rate]
    return row


def _completed(runs: dict, arm: str, learning_rate: float, column: str = "accuracy") -> dict:
    """Seed -> value of the completed runs of one arm and cell, from the summaries written."""
    out = {}
    for run in runs.values():
        if (run["arm"], run["lr"], run["status"]) == (arm, learning_rate, "completed"):
            summary = run["summary"]
            out[run["seed"]] = (
                summary["final"]["test_accuracy"]
                if column == "accuracy"
                else summary["target"]["step"]
            )
    return out


def test_runs_csv_is_tidy_and_sorted(tree):
    root, runs = tree
    report = build_report(root)
    frame = pd.read_csv(report.paths["runs.csv"])
    assert list(frame.columns) == [
        "run_id", "arm", "seed", "status", "backend", f"grid.{KEY}", *RUN_COLUMNS
    ]  # fmt: skip
    assert len(frame) == len(runs) == 18
    assert frame["status"].value_counts().to_dict() == {
        "completed": 15,
        "diverged": 1,
        "failed": 1,
        "incomplete": 1,
    }
    for run_id, run in runs.items():
        assert frame.set_index("run_id").loc[run_id, "status"] == run["status"]
    # arm order of ablation.yaml, then grid order, then seed
    expected = [(a, lr, s) for a in ARMS for lr in LEARNING_RATES for s in SEEDS]
    assert list(zip(frame["arm"], frame[f"grid.{KEY}"], frame["seed"], strict=True)) == expected
    completed = frame.set_index("run_id").loc["bn_before-lr0.1-s0"]
    assert completed["final_test_metric"] == pytest.approx(_accuracy("bn_before", 0.1, 0))
    assert completed["metric"] == "accuracy" and completed["params_trainable"] == 1000
    diverged = frame.set_index("run_id").loc["bn_after-lr0.1-s1"]
    assert diverged["diverged_step"] == 40 and np.isnan(diverged["final_test_metric"])
    failed = frame.set_index("run_id").loc["no_norm-lr0.1-s2"]
    assert failed["backend"] == "jax"  # from config.yaml: the failed summary lacks it
    assert np.isnan(failed["final_test_loss"]) and np.isnan(failed["total_steps"])


def test_summary_statistics_match_numpy(tree):
    root, runs = tree
    report = build_report(root)
    assert len(report.rows) == len(ARMS) * len(LEARNING_RATES)
    assert [(r["arm"], r[f"grid.{KEY}"]) for r in report.rows] == [
        (a, lr) for a in ARMS for lr in LEARNING_RATES
    ]
    for row in report.rows:
        arm, learning_rate = row["arm"], row[f"grid.{KEY}"]
        members = [r for r in runs.values() if (r["arm"], r["lr"]) == (arm, learning_rate)]
        assert row["n"] == 3 and row["cell"] == f"{KEY}={learning_rate}"
        for status in ("completed", "diverged", "failed", "incomplete"):
            assert row[status] == sum(r["status"] == status for r in members)
        values = np.array(list(_completed(runs, arm, learning_rate).values()))
        assert row["final_test_mean"] == pytest.approx(values.mean())
        assert row["final_test_std"] == pytest.approx(values.std(ddof=1))
        assert row["best_val_mean"] == pytest.approx(values.mean() + 0.01)
        assert row["final_test_n"] == len(values)
        assert row["final_val_mean"] == pytest.approx(values.mean() - 0.01)
        times = list(_completed(runs, arm, learning_rate, "steps").values())
        steps = [s for s in times if s]
        # a completed run that never reached the target counts at its last step (500)
        assert row["steps_to_target_mean"] == pytest.approx(np.mean([s or 500 for s in times]))
        assert row["steps_to_target_reached_mean"] == pytest.approx(np.mean(steps))
        assert row["steps_to_target_n"] == len(times)
        assert row["steps_to_target_censored"] == len(times) - len(steps)
        assert row["reached"] == len(steps)
        assert row["score"] == "test_accuracy"
        assert (row["steps"], row["examples"]) == (500, 500 * 32)
    censored = _row(report, "bn_after", 0.01)  # seed 2 never reached the target
    assert censored["reached"] == 2 and censored["steps_to_target_censored"] == 1
    assert censored["steps_to_target_mean"] == pytest.approx((230 + 240 + 500) / 3)
    assert censored["steps_to_target_std"] is None  # a spread of lower bounds means nothing


def test_paired_p_values_are_adjusted_over_the_report_by_holm(tree):
    root, _ = tree
    report = build_report(root)
    raw = [row["p_value"] for row in report.rows]
    assert [row["p_adjusted"] for row in report.rows] == adjust(raw, "holm")
    tested = [row for row in report.rows if row["p_value"] is not None]
    assert tested and all(row["p_correction"] == "holm" for row in tested)
    assert all(row["p_adjusted"] >= row["p_value"] for row in tested)
    markdown = report.paths["summary.md"].read_text()
    assert "| p | p (holm) |" in markdown and "Holm (family-wise error)" in markdown
    summary_csv = pd.read_csv(report.paths["summary.csv"])
    assert {"p_value", "p_adjusted", "p_correction", "diff_kind"} <= set(summary_csv.columns)


def test_paired_comparison_matches_scipy_and_skips_unfinished_seeds(tree):
    root, runs = tree
    report = build_report(root)
    seen_pairs = {}
    for row in report.rows:
        arm, learning_rate = row["arm"], row[f"grid.{KEY}"]
        if arm == REFERENCE:
            for column in ("n_pairs", "diff_mean", "diff_ci_low", "p_value", "speedup"):
                assert row[column] is None
            continue
        mine = _completed(runs, arm, learning_rate)
        ref = _completed(runs, REFERENCE, learning_rate)
        seeds = sorted(mine.keys() & ref.keys())
        seen_pairs[(arm, learning_rate)] = seeds
        assert row["n_pairs"] == len(seeds)
        a, b = np.array([mine[s] for s in seeds]), np.array([ref[s] for s in seeds])
        assert row["diff_mean"] == pytest.approx(np.mean(a - b))
        if len(seeds) < 2:
            assert row["p_value"] is None and row["diff_ci_low"] is None
            continue
        test = scipy_stats.ttest_rel(a, b)
        interval = test.confidence_interval(0.95)
        assert row["p_value"] == pytest.approx(test.pvalue)
        assert (row["diff_ci_low"], row["diff_ci_high"]) == pytest.approx(
            (interval.low, interval.high)
        )
    # diverged, failed and incomplete seeds drop out of the pairs
    assert seen_pairs == {
        ("bn_before", 0.01): [0, 1],  # bn_before seed 2 incomplete
        ("bn_before", 0.1): [0, 1],  # no_norm seed 2 failed
        ("bn_after", 0.01): [0, 1, 2],
        ("bn_after", 0.1): [0],  # bn_after seed 1 diverged, no_norm seed 2 failed
    }
    summary_csv = pd.read_csv(report.paths["summary.csv"])
    assert summary_csv.loc[summary_csv["arm"] == REFERENCE, "p_value"].isna().all()
    assert summary_csv.loc[summary_csv["arm"] == "bn_after", "p_value"].isna().tolist() == [
        False,
        True,
    ]


def test_speedup_is_mean_of_paired_step_ratios(tree):
    root, runs = tree
    report = build_report(root)
    for arm in ("bn_before", "bn_after"):
        for learning_rate in LEARNING_RATES:
            if (arm, learning_rate) == ("bn_after", 0.01):
                continue  # a censored run: below
            mine = _completed(runs, arm, learning_rate, "steps")
            ref = _completed(runs, REFERENCE, learning_rate, "steps")
            seeds = sorted(mine.keys() & ref.keys())
            assert all(mine[s] and ref[s] for s in seeds)  # every completed run reached it
            row = _row(report, arm, learning_rate)
            assert row["speedup_pairs"] == len(seeds) and row["speedup_bound"] == "exact"
            # The geometric mean, as the claims report it (an arithmetic mean before).
            assert row["speedup"] == pytest.approx(gmean([ref[s] / mine[s] for s in seeds]))
    # seed 2 of bn_after missed the target within its 500 steps: its pair's ratio is at most
    # 350 / 500, so the mean is an upper bound
    row = _row(report, "bn_after", 0.01)
    assert row["speedup_pairs"] == 3 and row["speedup_bound"] == "upper"
    assert row["speedup"] == pytest.approx(gmean([330 / 230, 340 / 240, 350 / 500]))
    markdown = report.paths["summary.md"].read_text()
    assert f"≤ {row['speedup']:.2f}× (3 pairs)" in markdown
    assert "| ≥ 323 | 2/3 |" in markdown  # mean with seed 2 at its last step: a lower bound


def _never_reaches(root: Path, arm: str) -> None:
    """Rewrite `arm`'s summaries as if it never reached the target."""
    for run_dir in (root / "runs").iterdir():
        summary_path = run_dir / "summary.json"
        if not run_dir.name.startswith(f"{arm}-") or not summary_path.is_file():
            continue
        summary = json.loads(summary_path.read_text())
        if "target" in summary:
            summary["target"].update(step=None, seconds=None)
            summary_path.write_text(json.dumps(summary))


def test_a_reference_that_never_reaches_the_target_gives_a_lower_bound(tree):
    root, _ = tree
    _never_reaches(root, REFERENCE)
    report = build_report(root)
    row = _row(report, "bn_before", 0.1)  # seeds 0 and 1 paired: no_norm seed 2 failed
    assert row["speedup_bound"] == "lower" and row["speedup_pairs"] == 2
    assert row["speedup"] == pytest.approx(gmean([500 / 100, 500 / 110]))
    ref = _row(report, REFERENCE, 0.01)
    assert ref["reached"] == 0 and ref["steps_to_target_censored"] == 3
    assert ref["steps_to_target_mean"] == 500 and ref["steps_to_target_reached_mean"] is None
    # the arm missing it too (bn_after seed 2 at lr 0.01): both censored, no pair
    row = _row(report, "bn_after", 0.01)
    assert row["speedup_bound"] == "lower" and row["speedup_pairs"] == 2
    markdown = report.paths["summary.md"].read_text()
    assert f"≥ {_row(report, 'bn_before', 0.1)['speedup']:.2f}× (2 pairs)" in markdown
    assert "| ≥ 500 | 0/3 |" in markdown
    console = Console(record=True, width=250)
    console.print(render_table(report))
    assert "≥ 500 (0/3 reached)" in console.export_text()
    summary_csv = pd.read_csv(report.paths["summary.csv"])
    assert set(summary_csv["speedup_bound"].dropna()) == {"lower"}
    assert pd.api.types.is_numeric_dtype(summary_csv["speedup"])


def test_means_over_fewer_runs_show_their_count_and_fewer_pairs_are_marked(tree):
    root, _ = tree
    report = build_report(root)
    row = _row(report, "bn_after", 0.1)  # seed 1 diverged
    assert row["final_test_n"] == 2 and row["n"] == 3
    assert (row["n_pairs"], row["n_seeds"]) == (1, 3)
    markdown = report.paths["summary.md"].read_text()
    line = next(line for line in markdown.splitlines() if line.startswith("| bn_after ★ | 0.1 |"))
    assert "(n=2/3)" in line and "| 1/3 |" in line and "+0.100 †" in line
    full = next(line for line in markdown.splitlines() if line.startswith("| bn_after | 0.01 |"))
    assert "(n=" not in full and "†" not in full  # 3 of 3: nothing to flag
    assert "- †: Δ and p from fewer pairs than seeds" in markdown
    summary_csv = pd.read_csv(report.paths["summary.csv"])
    assert summary_csv["final_test_n"].tolist() == [2, 3, 3, 2, 3, 2]


def test_best_cell_is_chosen_on_validation_not_test(tree):
    root, _ = tree
    # bn_before: lr 0.01 gets the better validation score, lr 0.1 keeps the better test score
    for run_dir in (root / "runs").glob("bn_before-lr0.01-*"):
        summary_path = run_dir / "summary.json"
        if summary_path.is_file():
            summary = json.loads(summary_path.read_text())
            summary["final"]["val_accuracy"] = 0.99
            summary_path.write_text(json.dumps(summary))
    report = build_report(root)
    low, high = _row(report, "bn_before", 0.01), _row(report, "bn_before", 0.1)
    assert high["final_test_mean"] > low["final_test_mean"]
    assert low["best_cell"] and not high["best_cell"]
    assert sum(r["best_cell"] for r in report.rows) == len(ARMS)  # one per arm
    # by the best validation score over training instead, lr 0.1 wins again
    best = build_report(root, select_by="best")
    assert _row(best, "bn_before", 0.1)["best_cell"]
    assert "best validation accuracy" in best.paths["summary.md"].read_text()
    with pytest.raises(SpecError, match=r"'test'.*final, best"):
        build_report(root, select_by="test")


def test_budgets_are_shown_per_cell_with_a_range_when_seeds_differ(tree):
    root, _ = tree
    for run_dir in (root / "runs").iterdir():
        summary_path = run_dir / "summary.json"
        if not summary_path.is_file() or "-lr0.1-" not in run_dir.name:
            continue
        summary = json.loads(summary_path.read_text())
        seed = summary.get("seed")
        summary.update(batch_size=128, total_steps=125 if seed != 2 else 100)
        summary_path.write_text(json.dumps(summary))
    report = build_report(root)
    assert (
        _row(report, "bn_before", 0.01)["steps"],
        _row(report, "bn_before", 0.01)["examples"],
    ) == (
        500,
        16000,
    )
    row = _row(report, "bn_before", 0.1)
    assert (row["steps"], row["examples"]) == ("100–125", "12800–16000")
    markdown = report.paths["summary.md"].read_text()
    assert "| steps | examples |" in markdown and "| 100–125 | 12800–16000 |" in markdown
    console = Console(record=True, width=250)
    console.print(render_table(report))
    assert "100–125" in console.export_text()  # unequal budgets get a terminal column


def test_summary_says_which_choices_were_made(tree):
    root, _ = tree
    for run_id, mode in (("bn_before-lr0.1-s0", "recalibrated"), ("bn_after-lr0.1-s0", "moving")):
        summary_path = root / "runs" / run_id / "summary.json"
        summary = json.loads(summary_path.read_text())
        summary_path.write_text(json.dumps({**summary, "bn_statistics": mode}))
    report = build_report(root)
    runs_csv = pd.read_csv(report.paths["runs.csv"]).set_index("run_id")
    assert runs_csv.loc["bn_before-lr0.1-s0", "bn_statistics"] == "recalibrated"
    assert np.isnan(runs_csv.loc["bn_before-lr0.1-s1", "bn_statistics"])  # not recorded
    markdown = report.paths["summary.md"].read_text()
    head = markdown.split("| arm |")[0]
    assert "Best cell: chosen by mean final validation accuracy" in head and "never by test" in head
    assert "Means: over completed runs" in head and "censored at its last step" in head
    assert "BN statistics at evaluation: moving in 15 runs, recalibrated in 1 run" in head
    assert "14 runs predate the record" in head
    data = json.loads(report.paths["summary.json"].read_text())
    assert data["select_by"] == "final"
    assert set(data["choices"]) == {
        "best cell",
        "means",
        "time to target",
        "BN statistics at evaluation",
    }
    console = Console(record=True, width=250)
    console.print(render_table(report))
    text = console.export_text()
    assert "Best cell: chosen by mean final validation accuracy" in text
    assert "Budget: 500 steps (16000 examples) per run." in text


def test_runs_without_a_bn_statistics_record_were_evaluated_with_moving_statistics(tree):
    root, _ = tree
    head = build_report(root).paths["summary.md"].read_text().split("| arm |")[0]
    assert "BN statistics at evaluation: moving (16 runs predate the record" in head


def test_markdown_json_and_latex_outputs(tree):
    root, _ = tree
    report = build_report(root)
    markdown = report.paths["summary.md"].read_text()
    assert all(f"| {arm} |" in markdown for arm in ARMS)
    assert "test accuracy (mean ± std)" in markdown and "Δ test accuracy vs no_norm" in markdown
    assert not (root / "summary.tex").exists() and "summary.tex" not in report.paths
    data = json.loads(report.paths["summary.json"].read_text())
    assert data["reference"] == REFERENCE and data["score"] == "test accuracy"
    assert len(data["rows"]) == 6 and "speedup" in data["definitions"]

    columns = ["arm", "cell", "score", "to_target", "diff", "speedup"]
    report = build_report(root, latex=True, latex_columns=columns)
    tex = report.paths["summary.tex"].read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"bn\_before" in tex
    assert r"$\pm$" in tex and "±" not in tex
    # bounds, the fewer-pairs mark and the best-cell star are TeX too
    assert r"$\geq$ 323" in tex and r"$\leq$" in tex and r"\dag{}" in tex and r"$\star$" in tex
    assert not set("≥≤†★–") & set(tex)
    build_report(root)
    assert not (root / "summary.tex").exists()  # a stale table does not outlive its runs


def test_render_table_lists_every_arm(tree):
    root, _ = tree
    console = Console(record=True, width=250)
    console.print(render_table(build_report(root)))
    text = console.export_text()
    assert all(arm in text for arm in ARMS) and "test accuracy" in text


def test_rebuilding_gives_identical_files(tree):
    root, _ = tree
    first = build_report(root, latex=True)
    contents = {name: path.read_bytes() for name, path in first.paths.items()}
    second = build_report(root, latex=True)
    assert {name: path.read_bytes() for name, path in second.paths.items()} == contents


def test_missing_ablation_yaml_derives_arms_and_grid_from_runs(tree):
    root, _ = tree
    (root / "ablation.yaml").unlink()
    report = build_report(root)
    assert report.arms == ("bn_after", "bn_before", "no_norm")  # order of the run directories
    assert report.reference == "bn_after" and report.grid_keys == (KEY,)
    assert len(report.rows) == 6
    assert all(r["n_pairs"] is None for r in report.rows if r["arm"] == "bn_after")


def test_run_without_ablation_json_is_its_own_arm(tree):
    root, _ = tree
    run_dir = root / "runs" / "bn_after-lr0.01-s0"
    (run_dir / "ablation.json").unlink()
    report = build_report(root)
    run = next(r for r in report.runs if r["run_id"] == run_dir.name)
    assert run["arm"] == "bn_placement-bn_after" and run["seed"] == 0
    assert run[f"grid.{KEY}"] == 0.01  # read from the config at the grid's dotted key
    assert run["cell"] == f"{KEY}=0.01"  # labelled as the runner labels cells
    assert report.arms[-1] == "bn_placement-bn_after"
    assert _row(report, "bn_after", 0.01)["n"] == 2


def test_loss_only_runs_are_scored_by_test_loss(tmp_path):
    root = tmp_path / "regression"
    for arm, seed, loss in [("a", 0, 0.5), ("a", 1, 0.7), ("b", 0, 0.4), ("b", 1, 0.5)]:
        run_dir = root / "runs" / f"{arm}-{seed}"
        run_dir.mkdir(parents=True)
        (run_dir / "ablation.json").write_text(json.dumps({"arm": arm, "seed": seed, "grid": {}}))
        summary = {"status": "completed", "metric": None, "final": {"test_loss": loss}}
        summary["best"] = {"val_loss": loss - 0.1, "step": 10}
        write_summary(run_dir, summary)
    report = build_report(root)
    assert report.score_label == "test loss" and report.grid_keys == ()
    b = next(r for r in report.rows if r["arm"] == "b")
    assert b["final_test_mean"] == pytest.approx(0.45) and b["best_val_mean"] == pytest.approx(0.35)
    assert b["diff_mean"] == pytest.approx(-0.15) and b["n_pairs"] == 2
    assert b["reached"] is None  # no target configured: no "0/2 reached"
    assert "test loss (mean ± std)" in report.paths["summary.md"].read_text()
    columns = list(pd.read_csv(report.paths["runs.csv"]).columns)
    assert columns[:6] == ["run_id", "arm", "seed", "status", "backend", "metric"]


def test_not_a_results_directory_names_the_path(tmp_path):
    with pytest.raises(SpecError, match="no runs/") as error:
        build_report(tmp_path)
    assert str(tmp_path) in str(error.value)
    (tmp_path / "runs").mkdir()
    with pytest.raises(SpecError, match="holds no run directories") as error:
        build_report(tmp_path)
    assert str(tmp_path / "runs") in str(error.value)


def test_unreadable_ablation_json_names_the_file(tree):
    root, _ = tree
    path = root / "runs" / "bn_after-lr0.01-s0" / "ablation.json"
    path.write_text("{not json")
    with pytest.raises(SpecError, match="cannot read") as error:
        build_report(root)
    assert str(path) in str(error.value)


def test_ablation_yaml_that_is_not_a_mapping_names_the_file(tree):
    root, _ = tree
    (root / "ablation.yaml").write_text("- just\n- a list\n")
    with pytest.raises(SpecError, match="expected a mapping") as error:
        build_report(root)
    assert str(root / "ablation.yaml") in str(error.value)


def test_paired_difference_handles_few_pairs_and_zero_variance():
    assert paired_difference({0: 1.0}, {1: 2.0}).n_pairs == 0
    one = paired_difference({0: 0.9, 1: float("nan")}, {0: 0.8, 1: 0.7})
    assert (one.n_pairs, one.p_value, one.ci_low) == (1, None, None)
    assert one.mean == pytest.approx(0.1)
    # Equal differences up to rounding tie: the exact sign-flip test, not a t statistic of
    # rounding noise (before: no test at all). 3 agreeing pairs give p = 2/8 and no bounded
    # 95% interval; 6 give p = 2/64 and an interval half a grid step either side.
    flat = paired_difference({0: 0.5, 1: 0.6, 2: 0.7}, {0: 0.4, 1: 0.5, 2: 0.6})
    assert flat.n_pairs == 3 and flat.kind == "grid"
    assert flat.p_value == pytest.approx(0.25) and flat.ci_high is None
    assert flat.mean == pytest.approx(0.1)
    six = paired_difference(dict.fromkeys(range(6), 0.6), dict.fromkeys(range(6), 0.5))
    assert six.p_value == pytest.approx(2 / 64)
    assert (six.ci_low, six.ci_high) == pytest.approx((0.05, 0.15))


def test_report_does_not_import_keras():
    heavy = "{'keras', 'tensorflow', 'jax'}"
    code = f"import sys, bnbench.analysis.tables; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_best_cell_chosen_on_the_test_split_is_not_called_never_by_test(tree):
    root, _ = tree
    for config_path in (root / "runs").glob("*/config.yaml"):
        config = yaml.safe_load(config_path.read_text())
        config["dataset"] = {"name": "digits", "validation_split": "test"}
        config_path.write_text(yaml.safe_dump(config))
    report = build_report(root)
    head = report.paths["summary.md"].read_text().split("| arm |")[0]
    assert "never by test" not in head
    assert "IS the test split (validation_split: test): its test score is optimistic" in head
