"""Shipping a finished run directory from a worker that shares no filesystem with the driver.

A Ray task trains into node-local scratch; `pack` turns the run directory into a stream of
pieces (a file's relative path and a chunk of at most `CHUNK_BYTES` of it, in order), which
travel through Ray's object store one by one, and `unpack` writes them on the driver into a
temporary folder beside the run's place in the results tree, then renames it into place. So
the run appears whole or not at all, as a local run does: until then its folder holds only the
incomplete marker (`mark_away`), and a stream cut off midway (the worker, its node or the
connection lost) leaves it so, for the same command to retry. Neither side holds more than one
chunk of a file in memory, so a saved model of any size streams through.

A vectorized group of seeds (one Ray task) ships all its runs in one stream (`pack_runs`), each
piece tagged with its run's id; the driver writes each run as its pieces end (`unpack_runs`),
so a stream cut off midway leaves the runs already written whole and the rest incomplete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import groupby
from pathlib import Path, PurePosixPath
from typing import IO

from bnbench.errors import SpecError
from bnbench.results import files, rundir

# 4 MiB: few enough pieces for the largest model here (hundreds of MB), small enough that a
# piece in flight costs nothing in the object store or the driver's memory.
CHUNK_BYTES = 4 * 2**20
# (path relative to the run directory, in POSIX form; the next chunk of that file)
Piece = tuple[str, bytes]
# (run id, path relative to that run's directory, the next chunk): a piece of one of several runs
RunPiece = tuple[str, str, bytes]
# Folders are made readable and searchable wherever files are readable (umask respected).
_DIR_MODE = files.MODE | ((files.MODE >> 2) & 0o111)


def pack(run_dir: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Piece]:
    """The files of `run_dir` as pieces: each file's chunks in order, one file after another.

    A file yields at least one piece (an empty file one empty chunk); links are not followed.
    """
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file() and not p.is_symlink()):
        name = path.relative_to(run_dir).as_posix()
        with path.open("rb") as handle:
            chunk = handle.read(chunk_bytes)
            yield name, chunk
            while chunk := handle.read(chunk_bytes):
                yield name, chunk


def pack_runs(run_dirs: Sequence[Path], chunk_bytes: int = CHUNK_BYTES) -> Iterator[RunPiece]:
    """The files of several run directories as one stream, run after run, each piece tagged
    with its run's id (the directory's name)."""
    for run_dir in run_dirs:
        for name, chunk in pack(run_dir, chunk_bytes):
            yield run_dir.name, name, chunk


def unpack_runs(pieces: Iterable[RunPiece], run_dirs: Mapping[str, Path]) -> None:
    """Write `pack_runs`' stream: each run's pieces as its directory (`unpack`), whole or not
    at all, as soon as the next run's pieces begin.

    Args:
        pieces: The stream.
        run_dirs: Where each run id the stream may name is written.

    Raises:
        SpecError: a piece names a run not in `run_dirs`, or one run's pieces come in two
            stretches; the runs written before it stay written.
        Exception: whatever reading `pieces` raises; the runs written before it stay written.
    """
    written: set[str] = set()
    for run_id, run_pieces in groupby(pieces, key=lambda piece: piece[0]):
        if run_id not in run_dirs or run_id in written:
            raise SpecError(f"shipped runs: run {run_id!r} is not one of this task's runs, or "
                            "came in two parts")  # fmt: skip
        unpack(((name, chunk) for _, name, chunk in run_pieces), run_dirs[run_id])
        written.add(run_id)


def mark_away(run_dir: Path) -> None:
    """Create `run_dir` holding only its incomplete marker, saying the run trains elsewhere:
    until `unpack` replaces it, the run is incomplete (and stays so if it never arrives)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    files.atomic_write_text(run_dir / rundir.INCOMPLETE, "training on a Ray node\n")


def unpack(pieces: Iterable[Piece], run_dir: Path) -> None:
    """Write `pieces` as the run directory `run_dir`, atomically: into a temporary folder beside
    it, which replaces `run_dir` (absent, or only `mark_away`'s marker) once every piece is in.

    Leftover temporary folders of this run (from a driver killed while writing it) are removed
    first: the caller holds the run's lease, so no one else is writing them.

    Raises:
        SpecError: a piece names a path outside the run directory or a file that is not part of
            one, or a file's chunks are not contiguous; nothing is left behind.
        Exception: whatever reading `pieces` raises (a lost worker); nothing is left behind.
    """
    parent = run_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob(f".{run_dir.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    temp = _temporary(run_dir)
    try:
        os.chmod(temp, _DIR_MODE)
        _write(pieces, temp)
        if run_dir.exists():  # the marker: moved aside (the run stays unfinished meanwhile)
            aside = _temporary(run_dir)
            os.rename(run_dir, aside)  # onto an empty folder, which it replaces
            shutil.rmtree(aside)
        os.rename(temp, run_dir)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _temporary(run_dir: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{run_dir.name}.", suffix=".tmp"))


def _write(pieces: Iterable[Piece], folder: Path) -> None:
    handle: IO[bytes] | None = None
    current = None
    try:
        for name, chunk in pieces:
            if name != current:
                _close(handle)
                handle, current = None, name
                target = folder / _checked(name)
                for missing in reversed([p for p in target.parents if not p.exists()]):
                    missing.mkdir(mode=_DIR_MODE)
                try:
                    handle = target.open("xb")  # a name seen before: its chunks were split
                except FileExistsError:
                    split = f"shipped run: the chunks of {name} are not contiguous"
                    raise SpecError(split) from None
            assert handle is not None
            handle.write(chunk)
    finally:
        _close(handle)


def _close(handle: IO[bytes] | None) -> None:
    if handle is not None:
        handle.flush()
        os.fsync(handle.fileno())  # on disk before the rename makes the run visible
        handle.close()


def _checked(name: str) -> PurePosixPath:
    """`name` as a path inside a run directory; refuses anything a run directory never holds."""
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or ".." in path.parts or path.parts[0] == ".":
        raise SpecError(f"shipped run: {name!r} is not a path inside a run directory")
    if path.parts[0] not in rundir.RUN_FILES:
        raise SpecError(f"shipped run: {name!r} is not part of a run directory (expected one of "
                        f"{', '.join(sorted(rundir.RUN_FILES))})")  # fmt: skip
    return path
