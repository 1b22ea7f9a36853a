"""A redraw removes the figures bnbench drew before and no longer draws, and only those."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bnbench.cli import app
from tests.support.export_tree import write_tree


@pytest.mark.slow
def test_a_new_format_leaves_no_old_figure_and_keeps_the_users_files(tmp_path):
    root = write_tree(tmp_path / "tree")
    runner = CliRunner()
    assert runner.invoke(app, ["plot", str(root)]).exit_code == 0
    plots = root / "plots"
    pngs = sorted(p.name for p in plots.glob("*.png"))
    assert pngs
    (plots / "my_sketch.png").write_bytes(b"mine")  # not bnbench's
    result = runner.invoke(app, ["plot", str(root), "--format", "svg"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in plots.glob("*.png")) == ["my_sketch.png"]
    assert sorted(p.stem for p in plots.glob("*.svg")) == sorted(name[:-4] for name in pngs)
    index = (plots / "index.md").read_text()
    assert ".png" not in index and "my_sketch" not in index
