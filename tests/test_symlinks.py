"""Planted links and foreign files in what bnbench writes: a `.lock` link or hard link, linked
`plots/`, `runs/`, `.leases/`, `mlartifacts/`, a dangling `mlflow.db`, hidden files in a run
folder. Each is refused with one message naming it (exit 2); the file it points to is unchanged."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bnbench.cli import app
from bnbench.errors import SpecError
from bnbench.results import files, locks, rundir
from tests.support.export_tree import write_tree
from tests.support.grid import ABLATION, write_ablation
from tests.support.specs import write_summary

runner = CliRunner()
# SQLAlchemy 2.1 deprecates a loader strategy MLflow's store still uses.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
VICTIM = b"precious data\n"


def _refused(args: list[Any], *fragments: str) -> str:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    message = " ".join(result.output.split())
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_bytes(VICTIM)
    return path


def _finished_run(out: Path) -> Path:
    rundir.begin(out, {"name": "tiny"})
    write_summary(out, {"status": "completed"})
    return out


# --- the lock file ----------------------------------------------------------------------------


@pytest.mark.parametrize("overwrite", [False, True])
def test_train_never_truncates_a_file_through_a_lock_link(tmp_path, write_spec, tiny_spec,
                                                          victim, overwrite):  # fmt: skip
    out = _finished_run(tmp_path / "run") if overwrite else tmp_path / "run"
    out.mkdir(exist_ok=True)
    (out / files.LOCK).symlink_to(victim)
    args = ["train", write_spec(tiny_spec), "--out", out, *(["--overwrite"] if overwrite else [])]
    _refused(args, f"{out / files.LOCK}: is a symbolic link", "never writes through a lock")
    assert victim.read_bytes() == VICTIM


def test_a_dangling_lock_link_creates_nothing(tmp_path):
    out, target = tmp_path / "run", tmp_path / "created-by-bnbench"
    out.mkdir()
    (out / files.LOCK).symlink_to(target)
    with pytest.raises(SpecError, match="is a symbolic link"), locks.folder_lock(out, "t"):
        pass
    assert not target.exists()


def test_a_hard_linked_or_foreign_lock_file_is_refused_untouched(tmp_path, victim):
    out = tmp_path / "run"
    out.mkdir()
    os.link(victim, out / files.LOCK)
    with pytest.raises(SpecError, match="is a hard link"), locks.folder_lock(out, "t"):
        pass
    assert victim.read_bytes() == VICTIM
    (out / files.LOCK).unlink()
    (out / files.LOCK).write_bytes(VICTIM)  # someone's own file called .lock
    with pytest.raises(SpecError, match="other than a bnbench lock"), locks.folder_lock(out, "t"):
        pass
    assert (out / files.LOCK).read_bytes() == VICTIM


def test_a_lock_left_by_a_killed_bnbench_is_reused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / files.LOCK).write_text("4242 bnbench train\n")
    with locks.folder_lock(out, "bnbench train"):
        assert (out / files.LOCK).read_text() == f"{os.getpid()} bnbench train\n"
    assert not (out / files.LOCK).exists()


# --- hidden and foreign files in a run folder ---------------------------------------------------


@pytest.mark.parametrize("finished", [False, True])
def test_train_keeps_hidden_files_of_a_run_folder(tmp_path, write_spec, tiny_spec, finished):
    out = tmp_path / "run"
    if finished:
        _finished_run(out)
    else:
        rundir.begin(out, {"name": "tiny"})  # an interrupted run: cleared when nothing else
    (out / ".git").mkdir()
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (out / ".notes").write_text("my notes\n")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    args = ["train", write_spec(tiny_spec), "--out", out, *(["--overwrite"] if finished else [])]
    _refused(args, f"{out}: is not empty and is not a run directory (it holds .git, .notes)")
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert (out / ".notes").read_text() == "my notes\n"


# --- linked folders of a results tree ------------------------------------------------------------


@pytest.mark.parametrize("name", ["runs", "plots", ".leases"])
def test_ablate_refuses_a_linked_folder_of_its_tree(tmp_path, name):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    results = tmp_path / "r"
    results.mkdir()
    (results / name).symlink_to(elsewhere)
    spec = write_ablation(tmp_path, ABLATION)
    _refused(["ablate", spec, "--out", results, "-q"], f"{results / name}: is a symbolic link",
             "never writes through a link")  # fmt: skip
    assert os.listdir(elsewhere) == [] and sorted(os.listdir(results)) == [name]


def test_plot_refuses_a_linked_plots_folder(tmp_path):
    root = write_tree(tmp_path / "tree")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "plots").symlink_to(elsewhere)
    _refused(["plot", root], f"{root / 'plots'}: is a symbolic link")
    assert os.listdir(elsewhere) == []


# --- the MLflow store --------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return write_tree(tmp_path / "tree")


def test_export_mlflow_refuses_linked_artifacts_and_a_dangling_database(tree, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tree / "mlartifacts").symlink_to(elsewhere)
    _refused(["export", "mlflow", tree], f"{tree / 'mlartifacts'}: is a symbolic link")
    (tree / "mlartifacts").unlink()
    (tree / "mlflow.db").symlink_to(elsewhere / "outside.db")
    _refused(["export", "mlflow", tree], f"{tree / 'mlflow.db'}: is a symbolic link")
    assert os.listdir(elsewhere) == []


@pytest.mark.parametrize("link", [False, True])
def test_export_mlflow_to_a_database_that_is_not_sqlite_is_one_line(tree, victim, link):
    database = tree / "mlflow.db"
    if link:
        database.symlink_to(victim)
        _refused(["export", "mlflow", tree], f"{database}: is a symbolic link")
    else:
        database.write_bytes(VICTIM)
    uri = f"sqlite:///{database}"
    _refused(["export", "mlflow", tree, "--tracking-uri", uri],
             f"{database}", "is not an SQLite database")  # fmt: skip
    assert victim.read_bytes() == VICTIM


def test_export_mlflow_of_a_read_only_tree_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    from tests.support.mounts import make_read_only, tmpfs

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    with tmpfs(tmp_path / "disk", "4m") as disk:
        root = write_tree(disk / "tree")
        before = sorted(root.rglob("*"))
        make_read_only(disk)
        _refused(["export", "mlflow", root], "cannot create the MLflow store",
                 "is not a writable folder")  # fmt: skip
        assert sorted(root.rglob("*")) == before


def test_an_alias_bomb_planted_in_a_tree_is_refused_unexpanded(tree):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    run = next((tree / "runs").iterdir())
    (run / rundir.CONFIG).write_text(bomb)
    _refused(["export", "mlflow", tree], f"{run / rundir.CONFIG}", "YAML aliases")
    assert not (tree / "mlflow.db").exists()  # refused before the store was opened
