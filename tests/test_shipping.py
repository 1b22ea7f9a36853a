"""Shipping a run directory in chunks: the same files arrive, whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bnbench.ablate.shipping import Piece, mark_away, pack, unpack
from bnbench.errors import SpecError
from bnbench.results import rundir
from tests.support.specs import files_under


def _run(folder: Path) -> Path:
    """A run directory as training leaves it, with a 'model' of a few hundred bytes."""
    run = folder / "abc123"
    rundir.begin(run, {"name": "tiny", "seed": 0})
    (run / rundir.HISTORY).write_text("step,train_loss\n0,2.3\n4,1.9\n")
    (run / rundir.MODEL).write_bytes(os.urandom(1000))
    (run / rundir.DIAGNOSTICS_DIR).mkdir()
    (run / rundir.DIAGNOSTICS_DIR / "bn_statistics.csv").write_text("")  # empty file
    rundir.finish(run, rundir.RunSummary(run_id=run.name, status="completed"))
    return run


def _contents(run: Path) -> dict[str, bytes]:
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in files_under(run)}


@pytest.mark.parametrize("chunk_bytes", [7, 1000, 4 * 2**20])
def test_a_run_arrives_with_the_same_files_whatever_the_chunk_size(tmp_path, chunk_bytes):
    run = _run(tmp_path / "worker")
    pieces = list(pack(run, chunk_bytes))
    assert max(len(chunk) for _, chunk in pieces) <= chunk_bytes
    unpack(iter(pieces), tmp_path / "results" / "runs" / run.name)
    shipped = tmp_path / "results" / "runs" / run.name
    assert _contents(shipped) == _contents(run)
    assert rundir.run_state(shipped) == "completed"
    assert os.listdir(shipped.parent) == [run.name]  # no temporary folder left beside it


def test_a_model_streams_through_in_chunks(tmp_path):
    run = _run(tmp_path / "worker")
    model = [chunk for name, chunk in pack(run, 64) if name == rundir.MODEL]
    assert len(model) == 16 and b"".join(model) == (run / rundir.MODEL).read_bytes()


def _cut_off(pieces: list[Piece]) -> Iterator[Piece]:
    yield from pieces[:3]
    raise ConnectionError("the worker's node was lost")


def test_a_stream_cut_off_midway_leaves_the_run_incomplete(tmp_path):
    run = _run(tmp_path / "worker")
    target = tmp_path / "results" / "runs" / run.name
    mark_away(target)
    assert rundir.run_state(target) == "incomplete"
    with pytest.raises(ConnectionError, match="node was lost"):
        unpack(_cut_off(list(pack(run, 16))), target)
    assert os.listdir(target.parent) == [run.name]  # no temporary folder left beside it
    assert os.listdir(target) == [rundir.INCOMPLETE]
    assert rundir.run_state(target) == "incomplete"  # for the same command to re-run


def test_a_run_that_arrives_replaces_its_marker(tmp_path):
    run = _run(tmp_path / "worker")
    target = tmp_path / "results" / "runs" / run.name
    mark_away(target)
    unpack(pack(run), target)
    assert _contents(target) == _contents(run)
    assert rundir.run_state(target) == "completed"
    assert os.listdir(target.parent) == [run.name]


def test_a_leftover_temporary_folder_of_the_run_is_cleared(tmp_path):
    run = _run(tmp_path / "worker")
    target = tmp_path / "results" / "runs" / run.name
    stale = target.parent / f".{run.name}.k2j3h4g5.tmp"  # a driver was killed while writing it
    (stale / rundir.CONFIG).parent.mkdir(parents=True)
    (stale / rundir.CONFIG).write_text("half")
    other = target.parent / ".another.k2j3h4g5.tmp"  # another run's: not ours to remove
    other.mkdir()
    unpack(pack(run), target)
    assert sorted(os.listdir(target.parent)) == [".another.k2j3h4g5.tmp", run.name]


@pytest.mark.parametrize(
    ("pieces", "message"),
    [
        ([("../escape.txt", b"x")], "is not a path inside a run directory"),
        ([("/etc/passwd", b"x")], "is not a path inside a run directory"),
        ([("notes.txt", b"x")], "is not part of a run directory"),
        ([(rundir.CONFIG, b"a"), (rundir.HISTORY, b"b"), (rundir.CONFIG, b"c")],
         "chunks of config.yaml are not contiguous"),
    ],
)  # fmt: skip
def test_pieces_that_no_run_directory_holds_are_refused_and_nothing_is_written(
    tmp_path, pieces, message
):
    target = tmp_path / "results" / "runs" / "abc123"
    with pytest.raises(SpecError, match=message):
        unpack(iter(pieces), target)
    assert files_under(tmp_path) == []
    assert os.listdir(target.parent) == []
