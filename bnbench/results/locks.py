"""The lock of a folder being written (an ablation's results tree, a `train` run directory).

The lock file is opened without following a symbolic link, and bnbench writes into it only
when it created it or it already holds a bnbench lock line: a planted `.lock` (a link to
another file, a hard link, a file of someone else's) is refused, never truncated.
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from bnbench.errors import SpecError
from bnbench.results.files import LOCK, MODE

# What a holder writes: "<pid> <command>\n", e.g. "4242 bnbench train".
_LOCK_LINE = re.compile(rb"\d+ bnbench[ a-z-]*\n?")
_OPEN = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


@contextmanager
def folder_lock(folder: Path, holder: str) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (created if missing); released even on `kill -9`.

    The lock file `LOCK` inside the folder is removed on release, and so is the folder when this
    call created it and it is still empty: a refused or failed command leaves nothing behind.

    Args:
        folder: The folder to lock.
        holder: The command holding it, for another one's message ("bnbench train").

    Raises:
        SpecError: another process holds it (the message names that process), or its lock file
            is not one bnbench made (a link, a hard link, a file with other content).
    """
    created = not folder.exists()
    fd = _acquire(folder, holder)
    try:
        yield
    finally:
        with suppress(OSError):
            (folder / LOCK).unlink()
            if created:
                folder.rmdir()  # only when empty
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _acquire(folder: Path, holder: str) -> int:
    """Open and lock `folder/LOCK`; retried when its holder removed it as we opened it."""
    path = folder / LOCK
    for _ in range(5):
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, _OPEN | os.O_NONBLOCK, MODE)  # NONBLOCK: a planted FIFO
        except FileNotFoundError:  # the folder was removed by the last holder: make it again
            continue
        except OSError as err:  # ELOOP: a symbolic link, which O_NOFOLLOW refuses
            raise _foreign(path, "is a symbolic link" if path.is_symlink() else
                           f"cannot be opened ({err.strerror})") from None  # fmt: skip
        try:
            _check_ours(fd, path)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 4096, 0).decode("utf-8", "replace").split(maxsplit=1)
            os.close(fd)
            pid = owner[0] if owner else "unknown"
            command = owner[1].strip() if len(owner) > 1 else "bnbench"
            raise SpecError(
                f"{folder}: another {command} is running on this directory (pid {pid}); wait "
                "for it or choose another --out"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        if path.exists() and os.stat(path).st_ino == os.fstat(fd).st_ino:
            with suppress(OSError):  # who holds it is only for messages
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {holder}\n".encode(), 0)
            return fd
        os.close(fd)  # we locked a lock file its holder had just removed
    raise SpecError(f"{folder}: could not lock it (its lock file {path} keeps vanishing)")


def _check_ours(fd: int, path: Path) -> None:
    """Refuse a lock file bnbench did not make: not a plain file, hard-linked, or other content."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise _foreign(path, "is not a plain file")
    if info.st_nlink > 1:
        raise _foreign(path, f"is a hard link to a file with {info.st_nlink} names")
    if info.st_size and not _LOCK_LINE.fullmatch(os.pread(fd, 4096, 0)):
        raise _foreign(path, "holds something other than a bnbench lock")


def _foreign(path: Path, what: str) -> SpecError:
    return SpecError(
        f"{path}: {what}; bnbench never writes through a lock file it did not make: remove it, "
        "or choose another --out"
    )
