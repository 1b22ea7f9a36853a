"""What an array of an .npz says it holds, read from its header before numpy allocates it.

numpy allocates an array as its header describes, so a few-byte member whose header claims
shape (10**13,) asks for terabytes (`_ArrayMemoryError`) before a byte of data is read. The
header's size is checked against the member's own (uncompressed) size in the archive first.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from bnbench.errors import SpecError


def check_member(path: Path, archive: Any, name: str) -> None:
    """Refuse the array `name` of the open .npz `archive` when its header claims more bytes than
    the archive holds for it.

    Args:
        path: The .npz, for the message.
        archive: `np.load`'s `NpzFile`.
        name: The array's name (`x_train`).

    Raises:
        SpecError: the header is unreadable, or claims more data than the member holds.
    """
    zipped: zipfile.ZipFile = archive.zip
    member = f"{name}.npy" if f"{name}.npy" in zipped.namelist() else name
    info = zipped.getinfo(member)
    try:
        with zipped.open(info) as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                return  # a newer format: numpy itself checks it
            held = info.file_size - handle.tell()  # the bytes after the header
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise SpecError(f"{path}: {name} has no readable array header ({err})") from None
    if dtype.hasobject:
        return  # refused by the caller without unpickling
    claimed = math.prod(shape) * dtype.itemsize
    if claimed > held:
        raise SpecError(
            f"{path}: {name}'s header claims shape {tuple(shape)} of {dtype} "
            f"({_size(claimed)}) but the archive holds {_size(held)} of data for it; the "
            "file is damaged or was not written by numpy"
        )


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{count} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} bytes"
