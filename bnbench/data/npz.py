"""Your own .npz (dataset 'npz'): reading it with clear errors, and the range its dtype implies.

A registry dataset knows its range (MNIST's pixels are 0..255, digits' 0..16); an .npz does not,
so 'normalize: scale' reads it from the inputs' dtype where the dtype says it, and refuses where
it does not, rather than dividing 0..255 pixels by 1: inputs left at that scale stall a network
without normalization while Batch Normalization absorbs them, a fake BN benefit.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from bnbench.config.schema import DatasetSpec
from bnbench.data.checks import ARRAY_NAMES
from bnbench.data.keras_sets import Arrays, check_local_path
from bnbench.data.size_checks import check_member
from bnbench.errors import SpecError


def read(spec: DatasetSpec) -> Arrays:
    """Read x_train, y_train, x_test and y_test from the .npz at `dataset.path`.

    Raises:
        SpecError: no path, not an .npz archive, an array missing, unreadable or pickled.
    """
    if spec.path is None:
        raise SpecError(
            "dataset 'npz' needs dataset.path: a .npz with x_train, y_train, x_test, y_test"
        )
    path = check_local_path(spec.path)  # a pipe or device would block the zip check
    # np.load takes any other file for a pickle and says so, which misleads: check first.
    if not zipfile.is_zipfile(path):
        raise SpecError(
            f"dataset.path: {path} is not a .npz archive; write one with "
            "np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in ARRAY_NAMES if name not in archive.files]
            if missing:
                raise SpecError(
                    f"dataset 'npz' ({path}): expected arrays x_train, y_train, x_test, y_test; "
                    f"missing {', '.join(missing)}"
                )
            x_train, y_train, x_test, y_test = (_array(path, archive, n) for n in ARRAY_NAMES)
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise SpecError(f"dataset 'npz' ({path}): not a readable .npz file ({err})") from None
    return x_train, y_train, x_test, y_test


def _array(path: Path, archive: np.lib.npyio.NpzFile, name: str) -> np.ndarray:
    check_member(path, archive, name)  # before numpy allocates what the header claims
    try:
        return np.asarray(archive[name])
    except MemoryError:
        raise SpecError(f"dataset 'npz' ({path}): {name} does not fit in memory") from None
    except ValueError as err:
        # numpy refuses object arrays without allow_pickle, and unpickling could run code.
        if "Object arrays" in str(err):
            raise SpecError(
                f"dataset 'npz' ({path}): {name} holds pickled (object) data, which bnbench "
                f"does not load; store it as a numeric array, e.g. "
                f"np.asarray({name}, dtype=np.float32)"
            ) from None
        raise SpecError(f"dataset 'npz' ({path}): {name} cannot be read ({err})") from None


def dtype_range(source: str, x_train: np.ndarray, x_test: np.ndarray) -> float:
    """The divisor that brings .npz inputs to [0, 1] (or keeps them in [-1, 1]), from their dtype.

    Booleans are 0/1 and floats already within [-1, 1] are left as they are (divisor 1); uint8 and
    uint16 are 8- and 16-bit pixels, divided by 255 and 65535. Anything else is refused.

    Args:
        source: what the arrays come from, to start the message.
        x_train: training inputs as read, before any conversion.
        x_test: test inputs as read.

    Raises:
        SpecError: the dtype does not say the range; the message asks for dataset.scale_by.
    """
    reason = _range_unknown(x_train, x_test)
    if reason is None:
        return 1.0 if x_train.dtype.kind in "bf" else float(np.iinfo(x_train.dtype).max)
    largest = max(float(x_train.max()), float(x_test.max()))
    raise SpecError(
        f"{source}: normalize: scale cannot tell what to divide the inputs by: {reason}. "
        f"Set dataset.scale_by to the largest value the data can take (the largest here is "
        f"{largest:g}), or use normalize: standardize or normalize: none"
    )


def _range_unknown(x_train: np.ndarray, x_test: np.ndarray) -> str | None:
    """Why the inputs' dtype does not give their range, or None when it does."""
    if x_train.dtype != x_test.dtype:
        return f"x_train is {x_train.dtype} but x_test is {x_test.dtype}"
    dtype = x_train.dtype
    low = min(float(x_train.min()), float(x_test.min()))
    high = max(float(x_train.max()), float(x_test.max()))
    if dtype.kind == "b" or (dtype.kind == "f" and low >= -1.0 and high <= 1.0):
        return None
    if dtype in (np.uint8, np.uint16):
        full = float(np.iinfo(dtype).max)
        # Values using under half the range (12-bit data in uint16, 0/1 masks in uint8) would
        # end up squeezed near 0, the very scale bug this guards against.
        if high > full / 2:
            return None
        return f"the {dtype} inputs only reach {high:g} of the {full:g} their dtype can hold"
    if dtype.kind == "f":
        return (
            f"the inputs are floats from {low:g} to {high:g}, outside [-1, 1], with no fixed range"
        )
    return f"the inputs are {dtype}, whose range says nothing about the data's ({low:g}..{high:g})"
