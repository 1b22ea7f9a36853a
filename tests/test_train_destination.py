"""`bnbench train --out DIR` over an interrupted run: the same config's folder is trained again
(it can only be re-run), another config's is refused without `--overwrite`, untouched."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bnbench.cli import app
from bnbench.config.loading import load_run_spec
from bnbench.results import rundir
from tests.support.specs import files_under

runner = CliRunner()


def _interrupt_at_the_end(step: int, total: int, loss: float | None) -> None:
    """A progress hook pressing Ctrl-C when training reports its last step, on the main thread
    (its calls from Keras' helper thread, mid-fit, are let through)."""
    if step >= total and threading.current_thread() is threading.main_thread():
        raise KeyboardInterrupt


@pytest.fixture
def interrupted(tmp_path, write_spec, tiny_spec) -> tuple[Path, Path]:
    """(the spec, its run folder interrupted by Ctrl-C before its test evaluation): what
    `train` itself leaves, with its config (and the digits' `scale_by: 16` filled in)."""
    from bnbench.train.loop import train

    spec = write_spec(tiny_spec, "a.yaml")
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(load_run_spec(spec), out, save_model=False, progress=_interrupt_at_the_end)
    assert rundir.run_state(out) == rundir.UNFINISHED
    assert yaml.safe_load((out / rundir.CONFIG).read_text())["dataset"]["scale_by"] == 16
    return spec, out


def test_an_interrupted_run_of_another_config_is_refused_untouched(interrupted, write_spec,
                                                                   tiny_spec):  # fmt: skip
    _, out = interrupted
    other = write_spec({**tiny_spec, "training": {**tiny_spec["training"], "learning_rate": 0.05}},
                       "b.yaml")  # fmt: skip
    before = {path: path.read_bytes() for path in files_under(out)}
    result = runner.invoke(app, ["train", str(other), "--out", str(out), "-q"],
                           env={"COLUMNS": "300"})  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"error: {out}: holds an interrupted run of another config; pass --overwrite to "
        "replace it or choose another --out"
    ]
    assert {path: path.read_bytes() for path in files_under(out)} == before  # not even a lock
    result = runner.invoke(app, ["train", str(other), "--out", str(out), "-q", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert rundir.run_state(out) == "completed"
    assert rundir.read_config(out)["training"]["learning_rate"] == 0.05


def test_an_interrupted_run_of_the_same_config_is_trained_again(interrupted):
    spec, out = interrupted
    result = runner.invoke(app, ["train", str(spec), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert rundir.run_state(out) == "completed"
