"""`compare` of different architectures labels each group "model N differs", not 30 lines."""

from __future__ import annotations

from typer.testing import CliRunner

from bnbench.analysis.grouping import group_runs
from bnbench.cli import app
from tests.support.runs import _config, write_run

SMALL = [{"type": "dense", "units": 8}]
LARGE = [{"type": "dense", "units": 16, "dropout": 0.1}, {"type": "dense", "units": 4}]


def test_many_model_keys_become_a_numbered_model():
    configs = [_config(seed, "batch", 0.1, model__blocks=blocks)
               for blocks in (SMALL, LARGE) for seed in (0, 1)]  # fmt: skip
    configs += [_config(0, "batch", 0.2, model__blocks=LARGE)]
    keys, groups = group_runs(configs)
    assert len([key for key in keys if key.startswith("model.")]) >= 4
    labels = [group.label for group in groups]
    assert labels == [
        "model 1 differs, training.learning_rate=0.1",
        "model 2 differs, training.learning_rate=0.1",
        "model 2 differs, training.learning_rate=0.2",
    ]


def test_a_few_model_keys_are_still_spelled_out():
    configs = [_config(0, norm, 0.1) for norm in ("batch", "none")]
    _, groups = group_runs(configs)
    assert [group.label for group in groups] == ["model.norm.kind=batch", "model.norm.kind=none"]


def test_compare_prints_short_labels_and_lists_the_keys_once(tmp_path):
    both = (("small", SMALL), ("large", LARGE))
    paths = [write_run(tmp_path / f"{name}{seed}", seed, model__blocks=blocks)
             for name, blocks in both for seed in (0, 1)]  # fmt: skip
    result = CliRunner().invoke(app, ["compare", *map(str, paths)])
    assert result.exit_code == 0, result.output
    assert "| model 1 differs |" in result.output and "| model 2 differs |" in result.output
    assert "labels number the models" in result.output
    assert "model.blocks.1.units=4" in result.output  # the keys, said in the notes
