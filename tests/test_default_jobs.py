"""`--jobs` defaults to the cores this process may use, as every example passes them."""

from __future__ import annotations

import os

from typer.testing import CliRunner

from bnbench.ablate.executor import ExecutorOptions
from bnbench.ablate.local_executor import available_cores, connect
from bnbench.cli import app
from tests.support.grid import ABLATION, write_ablation


def test_the_default_is_the_process_affinity(tmp_path):
    assert available_cores() == len(os.sched_getaffinity(0))
    executor = connect(ExecutorOptions(), tmp_path)
    try:
        assert executor.slots == available_cores()
    finally:
        executor.close()


def test_ablate_help_and_plan_say_so(tmp_path):
    result = CliRunner().invoke(app, ["ablate", "--help"], env={"COLUMNS": "200"})
    assert "default: one per core available here" in result.output
    path = write_ablation(tmp_path, dict(ABLATION))
    result = CliRunner().invoke(app, ["plan", str(path)])
    assert result.exit_code == 0, result.output
