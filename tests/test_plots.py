"""Plots render from a hand-written results tree: no training, no Keras."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.image import imread

from bnbench.analysis.figures import DPI, plt
from bnbench.analysis.panels import Panels
from bnbench.analysis.plots import _Figures, render_plots
from bnbench.errors import SpecError
from bnbench.results.tree import load_results_tree, seed_band
from tests.support.specs import write_summary

ARMS = ("batch_norm", "no_norm", "exploding")
LEARNING_RATES = (0.01, 0.1)
STEPS = np.arange(0, 220, 20)
DIVERGED_STEP = 80
TARGET = 0.9
LOSS_TARGET = 0.3


def _history(arm: str, learning_rate: float, seed: int, metric: str | None) -> pd.DataFrame:
    rate = {"batch_norm": 0.03, "no_norm": 0.01, "exploding": 0.02}[arm] * (1 + 5 * learning_rate)
    noise = np.random.default_rng(seed).normal(0, 0.02, len(STEPS))
    frame = pd.DataFrame({"step": STEPS, "epoch": STEPS / 50, "examples_seen": STEPS * 32})
    frame["wall_seconds"] = STEPS * 0.01
    frame["train_loss"] = 2.3 * np.exp(-rate * STEPS) + 0.05 + noise
    frame["val_loss"] = frame["train_loss"] * 1.1
    if metric:
        frame[f"train_{metric}"] = 1 - 0.9 * np.exp(-rate * STEPS) + noise / 2
        frame[f"val_{metric}"] = frame[f"train_{metric}"] - 0.01
    if arm == "exploding":
        after = frame["step"] > DIVERGED_STEP
        frame.loc[frame["step"] == DIVERGED_STEP, "train_loss"] = 1e6
        frame.loc[after, "train_loss"] = np.inf
        frame.loc[after, [c for c in frame.columns if c.startswith(("val_", "train_"))]] = np.nan
    elif seed == 1:
        frame.loc[3, "val_loss"] = np.nan  # a NaN in the middle of a healthy run
    return frame


def _percentiles(arm: str, seed: int) -> pd.DataFrame:
    rows = []
    for layer in ("dense_1", "dense_2"):
        drift = 0.0 if arm == "batch_norm" else 0.01
        for step in STEPS:
            centre = drift * step + 0.1 * seed
            rows.append((step, layer, centre - 1, centre, centre + 1 + drift * step))
    return pd.DataFrame(rows, columns=["step", "layer", "p15", "p50", "p85"])


def write_results_tree(
    root: Path, metric: str | None = "accuracy", seeds: tuple[int, ...] = (0, 1)
) -> Path:
    """An ablation of three arms over a learning-rate grid; `exploding` always diverges."""
    root.mkdir(parents=True)
    target_metric = f"val_{metric}" if metric else "val_loss"
    target_value = TARGET if metric else LOSS_TARGET
    spec = {
        "name": "bn_vs_none",
        "arms": {arm: {} for arm in ARMS},
        "grid": {"training.learning_rate": list(LEARNING_RATES)},
        "seeds": list(seeds),
        "reference": "no_norm",
    }
    (root / "ablation.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    rows = []
    for arm in ARMS:
        for learning_rate in LEARNING_RATES:
            for seed in seeds:
                run_id = f"{arm}-lr{learning_rate}-s{seed}"
                run_dir = root / "runs" / run_id
                (run_dir / "diagnostics").mkdir(parents=True)
                failed = arm == "no_norm" and learning_rate == 0.01 and seed == 1
                status = "diverged" if arm == "exploding" else "failed" if failed else "completed"
                config = {
                    "name": arm,
                    "seed": seed,
                    "training": {"learning_rate": learning_rate, "batch_size": 32},
                }
                (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
                row = _run(run_dir, run_id, arm, learning_rate, seed, status, metric)
                row.update(target_metric=target_metric, target_value=target_value)
                rows.append(row)
    pd.DataFrame(rows).to_csv(root / "runs.csv", index=False)
    return root


def _run(
    run_dir: Path,
    run_id: str,
    arm: str,
    learning_rate: float,
    seed: int,
    status: str,
    metric: str | None,
) -> dict[str, object]:
    row: dict[str, object] = {
        "run_id": run_id,
        "arm": arm,
        "seed": seed,
        "status": status,
        "backend": "jax",
        "grid.training.learning_rate": learning_rate,
        "metric": metric or "",
        "batch_size": 32,
        "learning_rate": learning_rate,
    }
    summary: dict[str, object] = {
        "run_id": run_id,
        "name": arm,
        "status": status,
        "metric": metric,
        "seed": seed,
    }
    if status == "failed":
        write_summary(run_dir, summary)
        return row
    history = _history(arm, learning_rate, seed, metric)
    history.to_csv(run_dir / "history.csv", index=False)
    last = history.iloc[-1]
    column = f"val_{metric}" if metric else "val_loss"
    target = TARGET if metric else LOSS_TARGET
    reached = history[column] >= target if metric else history[column] <= target
    hit = history["step"][reached]
    row.update(
        final_test_loss=last["val_loss"],
        final_test_metric=last.get(column) if metric else None,
        final_val_loss=last["val_loss"],
        final_val_metric=last.get(column) if metric else None,
        steps_to_target=None if hit.empty or status == "diverged" else int(hit.iloc[0]),
        diverged_step=DIVERGED_STEP if status == "diverged" else None,
        total_steps=int(STEPS[-1]),
    )
    summary.update(
        diverged_step=row["diverged_step"],
        total_steps=row["total_steps"],
        final={"test_loss": row["final_test_loss"]}
        | ({f"test_{metric}": row["final_test_metric"]} if metric else {}),
        target={"metric": column, "value": target, "step": row["steps_to_target"]},
    )
    write_summary(run_dir, summary)
    if arm != "exploding":
        _percentiles(arm, seed).to_csv(
            run_dir / "diagnostics/activation_percentiles.csv", index=False
        )
    if arm == "batch_norm":
        gap = pd.DataFrame(
            {
                "step": STEPS,
                "train_mode_loss": history["train_loss"],
                "inference_mode_loss": history["train_loss"] * 1.2 + 0.05,
            }
        )
        if metric:
            gap["train_mode_metric"] = history[f"train_{metric}"]
            gap["inference_mode_metric"] = history[f"train_{metric}"] - 0.05
        gap.to_csv(run_dir / "diagnostics/train_inference_gap.csv", index=False)
        stats = pd.DataFrame({"step": np.tile(STEPS, 2), "layer": ["bn_1"] * 11 + ["bn_2"] * 11})
        for i, name in enumerate(
            [
                "moving_mean_mean",
                "moving_mean_std",
                "moving_var_mean",
                "gamma_mean",
                "gamma_std",
                "beta_mean",
                "beta_std",
                "batch_mean_gap",
                "batch_var_gap",
            ]
        ):
            by_layer = np.concatenate([np.log1p(STEPS), 0.7 * np.log1p(STEPS)])
            stats[name] = by_layer * 0.1 * (i + 1) + seed * 0.01
        stats.to_csv(run_dir / "diagnostics/moving_statistics.csv", index=False)
    return row


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_results_tree(tmp_path / "ablation")


def _check_png(path: Path) -> None:
    image = imread(path)
    height, width = image.shape[:2]
    assert 6 * DPI <= width <= 10 * DPI + 1, (path.name, width)
    assert 2 * DPI <= height <= 12 * DPI, (path.name, height)
    assert image[..., :3].std() > 0.01, f"{path.name} is blank"


EXPECTED = {
    "learning_curves_step.png",
    "learning_curves_epoch.png",
    "time_to_target.png",
    "lr_sensitivity.png",
    "activation_percentiles.png",
    "train_inference_gap.png",
    "moving_statistics.png",
    "overview.png",
}


def test_every_figure_renders_and_is_indexed(tree: Path) -> None:
    written = render_plots(tree)
    assert {p.name for p in written} == EXPECTED
    for path in written:
        assert path.parent == tree / "plots"
        _check_png(path)
    index = (tree / "plots" / "index.md").read_text()
    for name in EXPECTED:
        assert f"[{name}]" in index
    assert "failed run(s): no_norm-lr0.01-s1" in index


@pytest.mark.parametrize(("fmt", "magic"), [("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_vector_formats(tree: Path, fmt: str, magic: bytes) -> None:
    written = render_plots(tree, fmt=fmt)
    assert len(written) == len(EXPECTED)
    for path in written:
        assert path.suffix == f".{fmt}"
        assert path.read_bytes().startswith(magic)


def test_bad_format_and_band_are_rejected(tree: Path) -> None:
    with pytest.raises(ValueError, match=r"'jpeg'.*png, svg, pdf"):
        render_plots(tree, fmt="jpeg")
    with pytest.raises(ValueError, match="'iqr'"):
        render_plots(tree, band="iqr")


def test_not_a_results_tree_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=re.escape(str(tmp_path))):
        render_plots(tmp_path)
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match=r"nowhere.*does not exist"):
        render_plots(missing)


def test_empty_runs_csv_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "runs.csv").write_text("run_id,arm,seed,status\n")
    with pytest.raises(SpecError, match="lists no runs"):
        render_plots(tmp_path)


def test_single_run_directory(tree: Path) -> None:
    run_dir = tree / "runs" / "batch_norm-lr0.1-s0"
    loaded = load_results_tree(run_dir)
    assert loaded.arms == ("batch_norm",)
    assert loaded.metric == "accuracy"
    assert loaded.runs["learning_rate"].iloc[0] == 0.1
    written = render_plots(run_dir)
    assert "learning_curves_step.png" in {p.name for p in written}
    assert "lr_sensitivity.png" not in {p.name for p in written}
    for path in written:
        _check_png(path)


def test_regression_without_metric_and_single_seed(tmp_path: Path) -> None:
    root = write_results_tree(tmp_path / "regression", metric=None, seeds=(0,))
    loaded = load_results_tree(root)
    assert loaded.metric is None
    assert loaded.score[0] == "final_test_loss"
    written = render_plots(root, log_loss=True, band="minmax")
    assert {p.name for p in written} == EXPECTED
    for path in written:
        _check_png(path)
    assert "min–max band" in (root / "plots" / "index.md").read_text()


def test_tree_reading(tree: Path) -> None:
    loaded = load_results_tree(tree)
    assert loaded.arms == ARMS
    assert loaded.grid_keys == ("training.learning_rate",)
    assert loaded.cells == ("lr=0.01", "lr=0.1")
    assert loaded.varies("training.learning_rate")
    assert not loaded.varies("training.batch_size")
    assert not np.isinf(loaded.histories["train_loss"]).any()
    # The failed run has no history; every other run does.
    assert loaded.histories["run_id"].nunique() == len(loaded.runs) - 1
    best = loaded.best_cells()
    assert best["batch_norm"].cell == "lr=0.1" and best["batch_norm"].scored
    assert best["batch_norm"].label == "batch_norm at lr=0.1"
    assert best["no_norm"].label == "no_norm at lr=0.1"  # its failed run is at lr=0.01
    # all diverged: shown at its first cell, and the label says why
    assert best["exploding"].cell == "lr=0.01" and not best["exploding"].scored
    assert "no completed run with a final validation accuracy" in best["exploding"].label
    assert loaded.runs.loc[loaded.runs["arm"] == "exploding", "steps_to_target"].isna().all()


def test_all_failed_runs_render_without_data(tree: Path) -> None:
    runs = pd.read_csv(tree / "runs.csv")
    runs["status"] = "failed"
    runs.to_csv(tree / "runs.csv", index=False)
    written = render_plots(tree)
    assert "overview.png" in {p.name for p in written}


def test_batch_size_grid_adds_a_figure_and_facets(tree: Path) -> None:
    runs = pd.read_csv(tree / "runs.csv")
    after_lr = runs.columns.get_loc("grid.training.learning_rate") + 1
    runs.insert(after_lr, "grid.training.batch_size", np.where(runs["seed"] == 0, 32, 128))
    runs.to_csv(tree / "runs.csv", index=False)
    loaded = load_results_tree(tree)
    assert loaded.cells == (
        "lr=0.01, batch size=32",
        "lr=0.01, batch size=128",
        "lr=0.1, batch size=32",
        "lr=0.1, batch size=128",
    )
    written = render_plots(tree)
    assert {"batch_size_sensitivity.png", "lr_sensitivity.png"} <= {p.name for p in written}
    for path in written:
        _check_png(path)


def test_empty_and_partial_histories_do_not_crash(tree: Path) -> None:
    (tree / "runs" / "no_norm-lr0.1-s1" / "history.csv").write_text(
        "step,epoch,examples_seen,wall_seconds,train_loss,train_accuracy,val_loss,val_accuracy\n"
    )
    (tree / "runs" / "no_norm-lr0.1-s0" / "history.csv").write_text("")
    (tree / "runs" / "batch_norm-lr0.1-s1" / "diagnostics" / "moving_statistics.csv").unlink()
    runs = pd.read_csv(tree / "runs.csv")
    runs.loc[runs["run_id"] == "no_norm-lr0.1-s1", "status"] = "incomplete"
    runs.to_csv(tree / "runs.csv", index=False)
    written = render_plots(tree)
    assert {p.name for p in written} == EXPECTED
    for path in written:
        _check_png(path)


def test_seed_band_ignores_nan_and_supports_minmax(tree: Path) -> None:
    loaded = load_results_tree(tree)
    frame = loaded.histories[loaded.histories["cell"] == "lr=0.1"]
    std = seed_band(frame, "step", "val_loss")
    minmax = seed_band(frame, "step", "val_loss", band="minmax")
    row = (std["arm"] == "batch_norm") & (std["x"] == 60)  # seed 1 has NaN there
    assert std.loc[row, "count"].item() == 1
    assert std.loc[row, "low"].item() == std.loc[row, "mean"].item()
    minmax = minmax.dropna(subset=["mean"])
    assert (minmax["low"] <= minmax["mean"]).all() and (minmax["mean"] <= minmax["high"]).all()


def test_plotting_never_imports_a_training_library() -> None:
    code = (
        "import sys, bnbench.analysis.plots, bnbench.demos.landscape, bnbench.data.synthetic\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'keras', 'tensorflow', 'jax'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _figures(root: Path, select_by: str = "final") -> _Figures:
    loaded = load_results_tree(root)
    return _Figures(loaded, Panels(loaded.arms, "std", False), select_by)  # type: ignore[arg-type]


def _texts(fig) -> list[str]:
    """Every title, suptitle and legend text of a figure."""
    texts = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    texts += [fig.get_suptitle()]
    texts += [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    plt.close(fig)
    return texts


def test_best_cell_is_chosen_on_validation_and_named(tree: Path) -> None:
    runs = pd.read_csv(tree / "runs.csv")
    # batch_norm: lr 0.01 now has the better validation score, lr 0.1 keeps the better test one
    low = (runs["arm"] == "batch_norm") & (runs["grid.training.learning_rate"] == 0.01)
    runs.loc[low, "final_val_metric"] = 0.999
    runs.to_csv(tree / "runs.csv", index=False)
    loaded = load_results_tree(tree)
    means = loaded.runs.groupby(["arm", "cell"])["final_test_metric"].mean()
    assert means["batch_norm", "lr=0.1"] > means["batch_norm", "lr=0.01"]
    assert loaded.best_cells()["batch_norm"].cell == "lr=0.01"
    unscored = loaded.best_cells("best")["batch_norm"]  # runs.csv has no best_val_metric here
    assert unscored.cell == "lr=0.01" and not unscored.scored
    texts = _texts(_figures(tree).overview())
    assert "batch_norm at lr=0.01" in texts
    assert any("best mean final validation accuracy" in t for t in texts)
    render_plots(tree)
    index = (tree / "plots" / "index.md").read_text()
    assert "- batch_norm at lr=0.01" in index and "never chosen on the test score" in index
    assert "never on test" in index  # in the captions of the best-cell figures
    with pytest.raises(SpecError, match="'test'"):
        render_plots(tree, select_by="test")  # type: ignore[arg-type]


def test_train_inference_gap_shows_every_grid_cell(tree: Path) -> None:
    texts = _texts(_figures(tree).gap())
    assert sorted(t for t in texts if t.startswith("lr=")) == ["lr=0.01"] * 2 + ["lr=0.1"] * 2
    assert "batch_norm" in texts


def test_percentiles_say_they_pool_units_unless_the_file_names_one(tree: Path) -> None:
    texts = _texts(_figures(tree).percentiles())
    assert any("percentiles pooled over all units of a layer" in t for t in texts)
    assert any(t.endswith("layer dense_1, pooled over all units") for t in texts)
    for path in (tree / "runs").glob("batch_norm-*/diagnostics/activation_percentiles.csv"):
        frame = pd.read_csv(path)
        frame["units"] = np.where(frame["layer"] == "dense_1", "pooled", "3")
        frame.to_csv(path, index=False)
    loaded = load_results_tree(tree)
    assert set(loaded.diagnostics["activation_percentiles"]["units"].dropna()) == {"pooled", "3"}
    texts = _texts(_figures(tree).percentiles())
    assert any("batch_norm" in t and t.endswith("layer dense_2, unit 3") for t in texts)
    assert any("no_norm" in t and t.endswith("layer dense_2, pooled over all units") for t in texts)
    assert any("per unit shown" in t for t in texts)


def test_sensitivity_ticks_show_steps_when_the_batch_size_varies(tree: Path) -> None:
    runs = pd.read_csv(tree / "runs.csv")
    runs["grid.training.batch_size"] = np.where(runs["seed"] == 0, 32, 128)
    runs["total_steps"] = np.where(runs["seed"] == 0, 400, 100)  # same epochs, fewer steps
    runs.to_csv(tree / "runs.csv", index=False)
    fig = _figures(tree).sensitivity("batch_size", 2)
    ticks = {t.get_text() for t in fig.axes[0].get_xticklabels()}
    plt.close(fig)
    assert ticks == {"32\n400 steps", "128\n100 steps"}
    render_plots(tree)
    index = (tree / "plots" / "index.md").read_text()
    assert "training steps, which differ across the grid" in index


def test_the_format_is_remembered_for_a_later_re_render(tree: Path) -> None:
    from typer.testing import CliRunner

    from bnbench.cli import app
    from bnbench.cli.common import draw_figures

    run_dir = tree / "runs" / "batch_norm-lr0.1-s0"
    result = CliRunner().invoke(app, ["plot", str(run_dir), "--format", "svg", "--log-loss"])
    assert result.exit_code == 0, result.output
    for path in (run_dir / "plots").glob("*.svg"):
        path.unlink()  # so that only what the re-render writes is there
    draw_figures(run_dir)  # what `ablate` calls after a resume
    names = {p.name for p in (run_dir / "plots").iterdir()}
    assert "overview.svg" in names and not any(n.endswith(".png") for n in names)
    assert json.loads((run_dir / "plots" / "figures.json").read_text()) == {
        "format": "svg", "log_loss": True, "band": "std", "select_by": "final"
    }  # fmt: skip
    index = (run_dir / "plots" / "index.md").read_text()
    assert "Drawn as svg; losses on a log axis; ± 1 std bands" in index
    render_plots(run_dir, fmt="png", log_loss=False)  # given options win, and are remembered
    assert "Drawn as png; losses on a linear axis" in (run_dir / "plots" / "index.md").read_text()
    assert render_plots(run_dir)[0].suffix == ".png"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "cannot read"),
        ('{"format": "bmp"}', "unknown figure format 'bmp'"),
        ('{"format": "svg", "colour": "red"}', "unknown option(s) colour"),
        ('{"log_loss": "yes"}', "log_loss must be true or false"),
    ],
)
def test_an_unusable_figures_json_is_named_and_nothing_is_drawn(
    tree: Path, content: str, fragment: str
) -> None:
    run_dir = tree / "runs" / "batch_norm-lr0.1-s0"
    (run_dir / "plots").mkdir()
    (run_dir / "plots" / "figures.json").write_text(content)
    with pytest.raises(SpecError, match=re.escape(fragment)) as error:
        render_plots(run_dir)
    assert "figures.json" in str(error.value)
    assert [p.name for p in (run_dir / "plots").iterdir()] == ["figures.json"]
    render_plots(run_dir, fmt="png", log_loss=False, band="std", select_by="final")  # all given
    assert json.loads((run_dir / "plots" / "figures.json").read_text())["format"] == "png"


def test_a_compare_folder_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bnbench.analysis.compare import compare_runs
    from bnbench.cli import app
    from tests.support.runs import write_run
    from tests.support.specs import files_under

    runs = [write_run(tmp_path / f"{norm}-s{seed}", seed, norm)
            for norm in ("batch", "none") for seed in (0, 1)]  # fmt: skip
    out = tmp_path / "cmp"
    compare_runs(runs, out=out, fmt="svg")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files_under(tmp_path)}
    result = CliRunner().invoke(app, ["plot", str(out), "--format", "png"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"{out} is a `bnbench compare` folder" in text
    assert f"re-run `bnbench compare RUN_DIR... --out {out}` to redraw it" in text
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files_under(tmp_path)} == before
