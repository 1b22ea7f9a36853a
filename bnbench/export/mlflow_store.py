"""Opening an MLflow SQLite store without breaking it: built whole or not at all, refused in
one line when it is not one.

MLflow creates a new SQLite store by running some thirty schema migrations; an export killed
among them used to leave a database that every later export failed on with a traceback. A new
store is therefore created and migrated in a temporary file beside its final name, then linked
into place: a killed export leaves only that temporary file, removed by a later export once
old. A store that exists but cannot be used (not SQLite, damaged, read-only) is one line naming
it, never a traceback.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from bnbench.errors import SpecError

_SQLITE_HEADER = b"SQLite format 3\x00"
_PREFIX = "sqlite:///"
# A temporary store older than this was left by a killed export (creating one takes seconds).
_STALE_S = 600.0


def open_sqlite_store(uri: str) -> str:
    """Check the SQLite store of `uri`, creating and migrating it atomically if missing.

    Other stores (a tracking server, a file store) are returned as they are.

    Returns:
        `uri`, now naming a store MLflow can open.

    Raises:
        SpecError: the database is a dangling link, not an SQLite file, or cannot be created;
            or the artifact folder beside it is a link.
    """
    if not uri.startswith(_PREFIX):
        return uri
    database = Path(uri.removeprefix(_PREFIX))
    artifacts = database.parent / "mlartifacts"  # where `export_mlflow` puts new experiments
    if artifacts.is_symlink():
        raise SpecError(f"{artifacts}: is a symbolic link (to {os.readlink(artifacts)}); "
                        "bnbench never writes through a link: remove it")  # fmt: skip
    _remove_stale(database)
    if database.is_symlink() and not database.exists():
        raise SpecError(f"{database}: is a dangling symbolic link (to {os.readlink(database)}); "
                        "bnbench never creates a store through a link: remove it")  # fmt: skip
    if database.exists():
        _check_sqlite(database)
        return uri
    folder = database.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise SpecError(f"{database}: cannot create the MLflow store: {folder} is not a "
                        "writable folder; pass --tracking-uri to write it elsewhere")  # fmt: skip
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{database.name}.", suffix=".tmp")
    os.close(fd)
    try:
        _migrate(Path(name), folder)
        with suppress(FileExistsError):  # another export created it meanwhile: use that one
            os.link(name, database)
    finally:
        for path in (Path(name), Path(f"{name}-journal")):
            path.unlink(missing_ok=True)
    return uri


def _migrate(path: Path, folder: Path) -> None:
    """Create MLflow's schema in the SQLite file `path` (empty), and close it."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    uri, artifacts = f"{_PREFIX}{path.as_posix()}", (folder / "mlartifacts").as_uri()
    store = SqlAlchemyStore(uri, artifacts)  # type: ignore[no-untyped-call]
    store.engine.dispose()


def _check_sqlite(database: Path) -> None:
    try:
        with database.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except OSError as err:
        raise SpecError(f"{database}: cannot be read ({err.strerror})") from None
    if header and header != _SQLITE_HEADER:
        where = f" (a link to {os.readlink(database)})" if database.is_symlink() else ""
        raise SpecError(f"{database}{where}: is not an SQLite database, so not an MLflow store; "
                        "move it away, or pass another --tracking-uri")  # fmt: skip


def _remove_stale(database: Path) -> None:
    """Delete the temporary stores (and their journals) that killed exports left, once old."""
    with suppress(OSError):
        for path in database.parent.glob(f".{database.name}.*.tmp*"):
            if not path.is_symlink() and time.time() - path.stat().st_mtime > _STALE_S:
                path.unlink()


@contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Turn the store's own errors (SQLAlchemy's, MLflow's) into one line naming the store.

    Raises:
        SpecError: in place of such an error.
    """
    import sqlite3

    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (MlflowException, SQLAlchemyError, sqlite3.Error) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SpecError(
            f"{uri}: the MLflow store cannot be used ({first[:300]}); if an older export was "
            "killed while creating it, move it away and export again"
        ) from None
