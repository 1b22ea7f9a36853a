"""What a run says before its first step: the set-up phases through the hook, in `bnbench train`,
and in the ablation's live display."""

from __future__ import annotations

import queue

from rich.console import Console
from typer.testing import CliRunner

from bnbench.ablate import worker
from bnbench.ablate.progress import AblationProgress, StepProgress
from bnbench.cli import app
from bnbench.config.schema import RunSpec
from bnbench.train.loop import train
from bnbench.train.prepare import PHASES

runner = CliRunner()
IN_ORDER = ["imports", "data", "build", "compile"]


def test_the_hook_receives_the_phases_in_order_before_the_first_step(tiny_spec, tmp_path):
    events: list[object] = []
    train(RunSpec.model_validate(tiny_spec), tmp_path / "run", save_model=False,
          progress=lambda step, total, loss: events.append(step),
          phase=events.append)  # fmt: skip
    phases = [e for e in events if isinstance(e, str)]
    assert phases == IN_ORDER
    assert events[: len(IN_ORDER)] == IN_ORDER  # every step report comes after them
    assert events[-1] == 12


def test_train_says_what_it_does_before_the_first_step(tiny_spec, write_spec, tmp_path):
    path = write_spec(tiny_spec)
    result = runner.invoke(app, ["train", str(path), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "set-up" in text
    for phase in IN_ORDER:
        assert PHASES[phase] in text
    assert "0/?" not in text and "12/12 steps" in text

    quiet = runner.invoke(app, ["train", str(path), "--out", str(tmp_path / "b"), "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    for said in ("set-up", "steps  loss", *PHASES.values()):
        assert said not in quiet.output


def test_step_progress_shows_the_phase_and_then_the_set_up_line():
    console = Console(record=True, width=120)
    with StepProgress(console) as shown:
        shown.phase("data")
        live = Console(record=True, width=120)
        live.print(shown._progress.make_tasks_table(shown._progress.tasks))
        now = live.export_text()
        assert "loading data… 0.0 s" in now and "steps" not in now and "?" not in now
        shown.phase("build")
        shown(1, 4, 0.5)
        shown(4, 4, 0.25)
    text = console.export_text()
    assert "set-up" in text and "loading data" in text and "building the model" in text
    assert "4/4 steps" in text and "loss 0.2500" in text


def test_a_workers_run_reports_its_phases(tiny_spec, tmp_path, monkeypatch):
    events: queue.Queue = queue.Queue()
    monkeypatch.setattr(worker, "_EVENTS", events)
    run_id, status, error = worker.run_one("r1", tiny_spec, {"arm": "a"}, str(tmp_path / "r1"),
                                           False)  # fmt: skip
    assert (run_id, status, error) == ("r1", "completed", None)
    kinds = []
    while not events.empty():
        kind, payload = events.get()
        assert payload["run_id"] == "r1"
        kinds.append(payload["phase"] if kind == "phase" else kind)
    assert kinds[:4] == IN_ORDER and set(kinds[4:]) == {"step"}


def test_the_ablation_display_shows_a_running_runs_phase():
    console = Console(record=True, width=120)
    display = AblationProgress(console, total=2, skipped=0, jobs=1)
    display("start", {"run_id": "r1"})
    display("phase", {"run_id": "r1", "phase": "data"})
    console.print(display._render())
    assert "loading data" in console.export_text()
    display("step", {"run_id": "r1", "step": 3, "total": 12, "loss": 0.5})
    console.print(display._render())
    text = console.export_text()
    assert "3/12" in text and "loading data" not in text
