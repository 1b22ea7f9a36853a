"""Data files checked against the size they claim before numpy allocates or walks it.

numpy allocates an array as its header describes, so a few-byte .npz member whose header claims
shape (10**13,) asks for terabytes (`_ArrayMemoryError`) before a byte of data is read: the
header's size is checked against the member's own (uncompressed) size in the archive first. An
idx file must be a header and whole items; a CIFAR batch's entries must be an integer array and
a flat list of labels, since lists nested by memo reference make a 60 KB pickle describe 10^15
elements that `np.asarray` would walk for ever.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from bnbench.errors import SpecError

# Fashion-MNIST's largest file is 47 MB unpacked; anything far larger is not one (a gzip bomb).
IDX_MAX_BYTES = 1 << 28
# A CIFAR batch holds 10,000 images (CIFAR-100's train file 50,000).
_CIFAR_MAX_IMAGES = 100_000


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


def check_idx(path: Path, length: int, header: int, size: int) -> None:
    """Refuse an unpacked idx file of `length` bytes that is not a `header` and whole items.

    Raises:
        SpecError: naming the file and what it should hold.
    """
    if length > IDX_MAX_BYTES or length < header or (length - header) % size:
        raise SpecError(
            f"{path}: {length} bytes is not an idx file of "
            f"{'labels' if size == 1 else '28x28 images'} (a {header}-byte header, then "
            f"{size} byte{'s' if size > 1 else ''} per item); the file is damaged"
        )


def check_cifar_batch(path: Path, data: Any, labels: Any, key: bytes) -> None:
    """Refuse a CIFAR batch whose entries are not what CIFAR holds, before numpy converts them.

    Raises:
        SpecError: `data` is not a 2-D integer array of at most 100,000 images, or `labels` is
            not a flat list (or integer array) of integers.
    """
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "ui" or data.ndim != 2:
        what = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise SpecError(f"{path}: not a CIFAR batch (b'data' is a {what}, not a 2-D array of "
                        "integer pixels)")  # fmt: skip
    if data.shape[0] > _CIFAR_MAX_IMAGES:
        raise SpecError(f"{path}: not a CIFAR batch ({data.shape[0]} images; a batch holds "
                        f"at most {_CIFAR_MAX_IMAGES:,})")  # fmt: skip
    flat = (
        isinstance(labels, list)
        and len(labels) <= _CIFAR_MAX_IMAGES
        and all(type(label) is int for label in labels)
    )
    if not (flat or (isinstance(labels, np.ndarray) and labels.dtype.kind in "ui")):
        raise SpecError(f"{path}: not a CIFAR batch ({key!r} is not a flat list of integer "
                        "labels)")  # fmt: skip
