"""Shipping a run directory in chunks: the same files arrive, whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bnbench.ablate.shipping import Piece, RunPiece, mark_away, pack, pack_runs, unpack, unpack_runs
from bnbench.errors import SpecError
from bnbench.results import rundir
from tests.support.specs import files_under


def _run(folder: Path, name: str = "abc123") -> Path:
    """A run directory as training leaves it, with a 'model' of a few hundred bytes."""
    run = folder / name
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


# --- a vectorized group of seeds: several runs in one stream ------------------------------------


def _group(folder: Path) -> list[Path]:
    return [_run(folder, name) for name in ("seed0", "seed1", "seed2")]


def test_a_groups_runs_arrive_each_in_its_own_directory(tmp_path):
    runs = _group(tmp_path / "worker")
    places = {run.name: tmp_path / "results" / "runs" / run.name for run in runs}
    for place in places.values():
        mark_away(place)
    pieces = list(pack_runs(runs, 64))
    assert [run_id for run_id, _, _ in pieces] == sorted(run_id for run_id, _, _ in pieces)
    unpack_runs(iter(pieces), places)
    for run in runs:
        assert _contents(places[run.name]) == _contents(run)
        assert rundir.run_state(places[run.name]) == "completed"
    assert sorted(os.listdir(tmp_path / "results" / "runs")) == ["seed0", "seed1", "seed2"]


def test_a_group_stream_cut_off_keeps_the_runs_written_and_leaves_the_rest_incomplete(tmp_path):
    runs = _group(tmp_path / "worker")
    places = {run.name: tmp_path / "results" / "runs" / run.name for run in runs}
    for place in places.values():
        mark_away(place)
    pieces = list(pack_runs(runs, 64))
    second = [i for i, (run_id, _, _) in enumerate(pieces) if run_id == "seed1"]

    def cut_off() -> Iterator[RunPiece]:
        yield from pieces[: second[len(second) // 2]]  # midway through the second run
        raise ConnectionError("the worker's node was lost")

    with pytest.raises(ConnectionError, match="node was lost"):
        unpack_runs(cut_off(), places)
    states = {name: rundir.run_state(place) for name, place in places.items()}
    assert states == {"seed0": "completed", "seed1": "incomplete", "seed2": "incomplete"}
    assert sorted(os.listdir(tmp_path / "results" / "runs")) == ["seed0", "seed1", "seed2"]


@pytest.mark.parametrize(("names", "message"), [
    (["seed0", "stranger"], "run 'stranger' is not one of this task's runs"),
    (["seed0", "seed1", "seed0"], "run 'seed0' is not one of this task's runs, or came in two"),
])  # fmt: skip
def test_a_group_stream_naming_another_run_is_refused(tmp_path, names, message):
    run = _run(tmp_path / "worker")
    pieces = [(name, piece, chunk) for name in names for piece, chunk in pack(run)]
    places = {name: tmp_path / "results" / "runs" / name for name in ("seed0", "seed1")}
    with pytest.raises(SpecError, match=message):
        unpack_runs(iter(pieces), places)
    assert not (tmp_path / "results" / "runs" / "stranger").exists()
