"""Writing results safely: atomic writes, links, leftovers of killed writers, locks, full disks."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bnbench.cli import app
from bnbench.errors import SpecError
from bnbench.results import files, locks, rundir
from bnbench.results.destination import reserve_run_dir
from tests.support.specs import TINY_SPEC, files_under, write_summary

runner = CliRunner()


def _link_to_outside(tmp_path: Path, link: Path, content: bytes = b"mine") -> Path:
    target = tmp_path / "elsewhere" / link.name
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(content)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return target


def test_an_atomic_write_replaces_a_link_instead_of_writing_through_it(tmp_path):
    import matplotlib.pyplot as plt

    from bnbench.analysis.figures import save_figure

    figure = tmp_path / "r" / "plots" / "overview.png"
    target = _link_to_outside(tmp_path, figure)
    fig, _ = plt.subplots()
    save_figure(fig, figure, "png")
    assert target.read_bytes() == b"mine"
    assert not figure.is_symlink() and figure.read_bytes().startswith(b"\x89PNG")

    table = tmp_path / "r" / "summary.csv"
    target = _link_to_outside(tmp_path, table)
    files.write_csv(table, [{"a": 1}], ["a"])
    assert target.read_bytes() == b"mine" and table.read_text() == "a\n1\n"


def test_every_output_gets_the_same_mode(tmp_path):
    previous = os.umask(0o022)
    try:
        files.write_json(tmp_path / "a.json", {})
        files.write_csv(tmp_path / "d" / "b.csv", [], ["x"])
        with files.replacing(tmp_path / "m.keras", suffix=".tmp.keras") as tmp:
            tmp.write_bytes(b"zip")
    finally:
        os.umask(previous)
    for path in files_under(tmp_path):
        assert stat.S_IMODE(path.stat().st_mode) == files.MODE, path
    assert files.MODE & 0o044 == 0o044  # readable by others under the usual umask


def test_a_full_disk_names_the_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    target = tmp_path / "r" / "summary.json"
    with pytest.raises(OSError) as caught:
        files.write_json(target, {"a": 1})
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert files_under(tmp_path) == []


def test_a_full_disk_through_the_cli_says_which_file(tmp_path, monkeypatch, write_spec):
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(write_spec(TINY_SPEC)), "--out", str(out), "-q"])
    assert result.exit_code == 2, result.output
    assert f"{out / rundir.INCOMPLETE}: No space left on device" in " ".join(result.output.split())
    assert not out.exists()  # nothing half-written is left behind


def test_temporary_names_are_recognised():
    for name in (".ablation.yaml.ab_c1234.tmp", ".model.keras.x9y8z7w6.tmp.keras"):
        assert files.is_temp_name(name), name
    for name in ("ablation.yaml", ".lock", ".ablation.yaml.tmp", "notes.tmp", ".a.abc.tmp"):
        assert not files.is_temp_name(name), name


def test_remove_tree_refuses_a_link_and_never_follows_one(tmp_path):
    root = tmp_path / "r"
    run = root / "runs" / "a"
    (run / "diagnostics").mkdir(parents=True)
    kept = _link_to_outside(tmp_path, run / "model.keras")
    outside_dir = tmp_path / "elsewhere" / "dir"
    outside_dir.mkdir()
    (outside_dir / "keep.csv").write_text("x")
    (run / "linked").symlink_to(outside_dir)
    files.remove_tree(run, root)
    assert not run.exists() and kept.read_bytes() == b"mine"
    assert (outside_dir / "keep.csv").exists()

    (root / "runs" / "b").symlink_to(outside_dir)
    with pytest.raises(SpecError, match=r"runs/b: is a symbolic link .*never deletes through"):
        files.remove_tree(root / "runs" / "b", root)
    (root / "runs" / "b").unlink()
    os.rename(root / "runs", tmp_path / "moved")
    (tmp_path / "moved" / "b").mkdir()
    (root / "runs").symlink_to(tmp_path / "moved")
    with pytest.raises(SpecError, match=r"/runs: is a symbolic link .*runs/b is not deleted"):
        files.remove_tree(root / "runs" / "b", root)
    assert (outside_dir / "keep.csv").exists() and (tmp_path / "moved" / "b").is_dir()


def test_a_lock_refuses_a_second_holder_and_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "new"
    with locks.folder_lock(folder, "bnbench train"):
        with (
            pytest.raises(
                SpecError, match=rf"another bnbench train is running .*pid {os.getpid()}"
            ),
            locks.folder_lock(folder, "bnbench ablate"),
        ):
            pass
        assert (folder / files.LOCK).exists()
    assert not folder.exists()  # created by the lock, still empty: removed
    folder.mkdir()
    with locks.folder_lock(folder, "bnbench train"):
        (folder / "kept").write_text("x")
    assert [p.name for p in folder.iterdir()] == ["kept"]


# --- `train --out` --------------------------------------------------------------------------


def _finished_run(path: Path) -> None:
    rundir.begin(path, {"name": "x"})
    write_summary(path, {"status": "completed"})


def test_train_refuses_a_busy_run_directory(tmp_path, write_spec):
    out = tmp_path / "run"
    with locks.folder_lock(out, "bnbench train"):
        result = runner.invoke(app, ["train", str(write_spec(TINY_SPEC)), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "another bnbench train is running" in result.output
    assert not out.exists()


def test_a_killed_writers_temporary_file_does_not_make_a_folder_foreign(tmp_path, write_spec):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".INCOMPLETE.k1ll3d00.tmp").write_text("")
    result = runner.invoke(app, ["train", str(write_spec(TINY_SPEC)), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert rundir.run_state(out) == "completed"
    assert not [name for name in os.listdir(out) if name.startswith(".")]  # no temp, no lock


def test_reserving_clears_an_incomplete_run_and_refuses_what_it_must(tmp_path):
    out = tmp_path / "run"
    rundir.begin(out, {"name": "x"})
    with reserve_run_dir(out, {"name": "x"}, overwrite=False) as leased:  # its own config
        assert leased == out and os.listdir(out) == [files.LOCK]
    _finished_run(out)
    with pytest.raises(SpecError, match="finished run"), reserve_run_dir(out, {}, overwrite=False):
        pass
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with (
        pytest.raises(SpecError, match="not a run directory"),
        reserve_run_dir(tmp_path / "mine", {}, overwrite=True),
    ):
        pass
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]  # not even a lock file


def test_a_run_directory_that_is_a_link_is_never_cleared(tmp_path):
    real = tmp_path / "real"
    _finished_run(real)
    (tmp_path / "link").symlink_to(real)
    with (
        pytest.raises(SpecError, match=r"link: is a symbolic link .*holding a run"),
        reserve_run_dir(tmp_path / "link", {}, overwrite=True),
    ):
        pass
    assert rundir.run_state(real) == "completed"


def test_an_ablation_run_that_is_a_link_is_refused_by_name(tmp_path):
    from bnbench.ablate.runner import run_ablation
    from bnbench.config.ablation import load_ablation
    from bnbench.results.layout import ABLATION, run_path
    from tests.support.grid import ABLATION as GRID
    from tests.support.grid import write_ablation

    ablation = load_ablation(write_ablation(tmp_path, GRID))
    results = tmp_path / "r"
    files.write_yaml(results / ABLATION, ablation.resolved)
    elsewhere = tmp_path / "elsewhere"
    rundir.begin(elsewhere, {"name": "x"})  # incomplete: would be cleared
    run = run_path(results, ablation.runs[0].run_id)
    run.parent.mkdir()
    run.symlink_to(elsewhere)
    with pytest.raises(SpecError, match=rf"{run.name}: is a symbolic link"):
        run_ablation(ablation, results, shard=(1, len(ablation.runs)))
    assert (elsewhere / rundir.CONFIG).exists()
    assert yaml.safe_load((elsewhere / rundir.CONFIG).read_text()) == {"name": "x"}
