"""Writing and reading the files of a results tree: atomic writes, safe deletion, locks, and one
guarded parser.

Every file bnbench writes goes through a temporary file in the same folder and a rename, so a
reader (or a run killed mid-write) never sees half a file; the rename replaces a symbolic link
rather than writing through it. A temporary file left by a killed writer is recognisable by its
name (`is_temp_name`), so it never counts as content and is cleaned up by the next writer that
holds the folder's lock (or, in a folder written without a lock, once it is old). Deleting never
follows a symbolic link.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import yaml

from bnbench.config.identity import jsonable
from bnbench.config.yamlfile import check_size
from bnbench.errors import SpecError
from bnbench.results.cells import spreadsheet_safe

_UMASK = os.umask(0)
os.umask(_UMASK)
# One mode for every output: what the umask allows (mkstemp alone would make files private).
MODE = 0o666 & ~_UMASK
# The lock file of a folder being written (an ablation's results tree, a `train` run directory).
LOCK = ".lock"
# `.<name>.<8 random characters>.tmp`, optionally followed by the real suffix (`.tmp.keras`).
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?")


def is_temp_name(name: str) -> bool:
    """Whether `name` is one of our temporary files (left behind only by a killed writer)."""
    return _TEMP_NAME.fullmatch(name) is not None


def remove_temp_files(folder: Path) -> None:
    """Delete the temporary files a killed writer left directly in `folder` (if it exists).

    Call it only while holding the folder's lock: a live writer's temporary file looks the same.
    """
    if not folder.is_dir() or folder.is_symlink():
        return
    for entry in os.scandir(folder):
        if is_temp_name(entry.name) and not entry.is_dir(follow_symlinks=False):
            Path(entry.path).unlink(missing_ok=True)


def remove_old_temp_files(folder: Path, older_than_s: float) -> None:
    """Delete our temporary files in `folder` last modified more than `older_than_s` ago.

    For a folder that several processes (on several machines) write at once, where no lock says
    who writes: a live writer's temporary file exists for the seconds between its creation and
    its rename, so one that is much older was left by a killed writer.
    """
    if not folder.is_dir() or folder.is_symlink():
        return
    for entry in os.scandir(folder):
        if not is_temp_name(entry.name) or entry.is_dir(follow_symlinks=False):
            continue
        with suppress(OSError):  # gone meanwhile: its writer renamed or another one removed it
            if time.time() - entry.stat(follow_symlinks=False).st_mtime > older_than_s:
                Path(entry.path).unlink()


def remove_tree(path: Path, root: Path) -> None:
    """Delete the folder `path` inside the tree `root`, never through a symbolic link.

    Links inside `path` are removed, not followed.

    Raises:
        SpecError: `path`, or a folder between `root` and it, is a symbolic link.
    """
    depth = len(path.relative_to(root).parts)  # ValueError when `path` is not inside `root`
    for link in (path, *path.parents[: depth - 1]):
        if link.is_symlink():
            raise _link_error(link, path)
    shutil.rmtree(path)


def clear_folder(folder: Path, keep: Collection[str] = ()) -> None:
    """Delete everything in `folder` but the names in `keep`; links are removed, not followed.

    Raises:
        SpecError: `folder` is itself a symbolic link.
    """
    if folder.is_symlink():
        raise _link_error(folder, folder)
    for entry in os.scandir(folder):
        if entry.name in keep:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def refuse_links(root: Path, names: Iterable[str]) -> None:
    """Refuse the folders or files `names` of the tree `root` that are symbolic links.

    A tree's own entries (its `runs/`, `plots/`, lease folder, MLflow database) are made by
    bnbench; one that is a link was planted, and writing through it would write (or create, for a
    dangling link) files outside the tree. `root` itself may be a link: the user chose it.

    Raises:
        SpecError: naming the first link found and where it points.
    """
    for name in names:
        link = root / name
        if link.is_symlink():
            raise SpecError(
                f"{link}: is a symbolic link (to {os.readlink(link)}); bnbench never writes "
                "through a link inside a results tree: remove the link, or choose another --out"
            )


def _link_error(link: Path, path: Path) -> SpecError:
    what = "" if link == path else f", so {path} is not deleted through it"
    return SpecError(
        f"{link}: is a symbolic link (to {os.readlink(link)}){what}; bnbench never deletes "
        "through a link: remove it yourself, or choose another --out"
    )


@contextmanager
def replacing(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside `path` to write; renamed onto `path` when the block succeeds.

    On any error the temporary file is deleted; an `OSError` (a full disk, say) is re-raised
    naming `path`, so the message says which output could not be written.

    Args:
        path: The file to write.
        suffix: The temporary name's ending; `.tmp` followed by `path`'s suffix for writers
            that insist on one (Keras' `model.save` wants `.keras`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as err:
        raise _naming(err, path) from err
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, MODE)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise _naming(err, path) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# Write errors that say nothing about the run: the disk or quota is full. A run they stop is
# left incomplete, to be trained again, as for a lost worker; never recorded `failed`.
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def out_of_space(error: BaseException) -> bool:
    """Whether `error` is a full disk or quota (not the run's fault)."""
    return isinstance(error, OSError) and error.errno in _NO_SPACE


def _naming(err: OSError, path: Path) -> OSError:
    """`err` with `path` as its file name (errors from inside a write often carry none)."""
    if err.errno is None or err.filename == str(path):
        return err
    return OSError(err.errno, err.strerror or os.strerror(err.errno), str(path))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename.

    Raises:
        OSError: it cannot be written; `filename` is `path`.
    """
    with replacing(path) as tmp, tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` as UTF-8, atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def create_exclusive(path: Path, data: bytes) -> bool:
    """Create `path` holding `data` unless it exists; a reader sees the whole file or none.

    The data goes to a temporary file that is then hard-linked to `path`: the link is atomic
    and fails when `path` exists, also on NFS (where `O_EXCL` was long unreliable). When the
    reply to the link is lost on NFS, the temporary file's link count still tells.

    Returns:
        True when this call created `path`, False when it existed.

    Raises:
        OSError: it cannot be written; `filename` is `path`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _naming(err, path) from err
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, MODE)
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as err:
        if tmp.exists() and os.stat(tmp).st_nlink == 2:
            return True
        if err.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):  # no hard links here
            return _create_excl(path, data)
        raise _naming(err, path) from err
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _create_excl(path: Path, data: bytes) -> bool:
    """`create_exclusive` where hard links are not supported: `O_EXCL`, the file briefly empty."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, MODE)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return True


def write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=jsonable) + "\n")


def write_yaml(path: Path, data: Any) -> None:
    """Write `data` as YAML (keys in their given order), atomically."""
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]], columns: list[str]) -> None:
    """Write `rows` under the header `columns`, atomically; None is an empty cell.

    Floats are written with `repr`, so that a value read back is the value written; text that
    a spreadsheet would run as a formula gets a leading apostrophe (`cells.spreadsheet_safe`).
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    atomic_write_text(path, buffer.getvalue())


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return spreadsheet_safe(value)  # a label must not run as a formula when opened
    return value


def parse_file(path: Path) -> Any:
    """The content of a JSON (`.json`) or YAML (any other suffix) file, safely parsed.

    YAML goes through the guard of spec files (`yamlfile.check_size`): no alias bombs.

    Raises:
        SpecError: the file cannot be read or parsed; the message names the path.
    """
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            return json.loads(text)
        check_size(text, str(path))  # an alias bomb planted in a tree is refused unexpanded
        return yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as error:
        raise SpecError(f"cannot read {str(path)!r}: {error}") from error


def read_mapping(path: Path, *, missing_ok: bool = True) -> dict[str, Any]:
    """A mapping from a JSON or YAML file; {} when the file is absent and `missing_ok`.

    Raises:
        SpecError: the file cannot be parsed or does not hold a mapping.
    """
    if missing_ok and not path.is_file():
        return {}
    data = parse_file(path)
    if not isinstance(data, dict):
        raise SpecError(f"{str(path)!r}: expected a mapping, got {type(data).__name__}")
    return data


def pid_alive(pid: int) -> bool:
    """Whether process `pid` of this machine (and pid namespace) still runs; another user's
    process counts as running. Writers name themselves by pid so that their leftovers can be
    told from a live writer's."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
