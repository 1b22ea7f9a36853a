"""Refuse data that cannot give a meaningful number, before anything trains or is written.

`load_dataset` runs these on the arrays as read, so a NaN pixel, a mismatched test set or one-hot
labels fail at `bnbench validate` time with a message naming the array and what was found,
instead of a run reported as 'diverged at step 4' or one that trains fully and then crashes when
it is evaluated on the test split.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bnbench.errors import SpecError

ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")

# dtype.kind -> how to say what such an array holds; 'b', 'i', 'u' and 'f' are numbers we can use.
_NOT_NUMBERS = {
    "c": "complex numbers",
    "U": "text",
    "S": "bytes",
    "O": "pickled (object) data",
    "M": "dates",
    "m": "time spans",
    "V": "raw or structured records",
}


def check_arrays(source: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Refuse arrays that are not numbers, not example-major, empty, non-finite or mismatched.

    Args:
        source: what the arrays come from, e.g. "dataset 'npz' (data.npz)", to start messages.
        arrays: x_train, y_train, x_test and y_test as read, before any conversion.

    Raises:
        SpecError: the first problem found; the message names the array and what it holds.
    """
    for name in ARRAY_NAMES:
        array = arrays[name]
        for problem in (_not_numbers, _bad_shape, _not_finite, _one_hot):
            found = problem(name, array)
            if found:
                raise SpecError(f"{source}: {found}")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) != len(y):
            raise SpecError(
                f"{source}: x_{split} has {len(x)} examples but y_{split} has {len(y)} labels; "
                "they must pair up one to one"
            )
    for kind in ("x", "y"):
        train, test = arrays[f"{kind}_train"].shape[1:], arrays[f"{kind}_test"].shape[1:]
        if train != test:
            raise SpecError(
                f"{source}: {kind}_train examples have shape {train} but {kind}_test examples "
                f"have shape {test}; the test split must look like the training split"
            )


def check_labels(
    source: str, y_train: np.ndarray, y_test: np.ndarray, num_classes: int | None
) -> None:
    """Refuse class labels that are not indices 0..num_classes-1 or that training never sees.

    Args:
        source: what the labels come from, to start messages.
        y_train: training labels as read, one per example.
        y_test: test labels as read, one per example.
        num_classes: the registry's class count, or None when it is inferred from the labels.

    Raises:
        SpecError: fractional, negative or out-of-range labels, a single class, or test labels
            that never occur in training (their accuracy would measure nothing learned).
    """
    for name, y in (("y_train", y_train), ("y_test", y_test)):
        found = _bad_label_values(name, y, num_classes)
        if found:
            raise SpecError(f"{source}: {found}")
    seen = np.unique(y_train)
    if len(seen) < 2:
        raise SpecError(
            f"{source}: y_train holds a single class ({_number(seen[0])}); "
            "a classifier needs at least two"
        )
    unseen = np.setdiff1d(np.unique(y_test), seen)
    if len(unseen):
        shown = ", ".join(_number(v) for v in unseen[:5]) + (", ..." if len(unseen) > 5 else "")
        raise SpecError(
            f"{source}: y_test holds {len(unseen)} {_plural(len(unseen), 'class', 'classes')} "
            "that never occur in y_train "
            f"({shown}); a model cannot learn a class it never sees in training"
        )


def _not_numbers(name: str, array: np.ndarray) -> str | None:
    what = _NOT_NUMBERS.get(array.dtype.kind)
    if what is None:
        return None
    return (
        f"{name} holds {what} (dtype {array.dtype}); bnbench trains on integers, floats or booleans"
    )


def _bad_shape(name: str, array: np.ndarray) -> str | None:
    if array.ndim == 0:
        return f"{name} is a single value ({_number(array.item())}), not one entry per example"
    if name.startswith("x") and array.ndim == 1:
        return (
            f"{name} has shape {array.shape}, one number per example; inputs need a feature "
            f"axis: store {name}[:, None]"
        )
    if array.size == 0:
        return f"{name} is empty (shape {array.shape})"
    return None


def _not_finite(name: str, array: np.ndarray) -> str | None:
    if array.dtype.kind != "f":  # integers and booleans cannot hold NaN or inf
        return None
    bad = ~np.isfinite(array)
    if not bad.any():
        return None
    nans = int(np.isnan(array).sum())
    infs = int(bad.sum()) - nans
    counts = " and ".join(
        f"{count} {label}" for count, label in ((nans, "NaN"), (infs, "infinite")) if count
    )
    return (
        f"{name} holds {counts} {_plural(nans + infs, 'value')} (first {_where(name, bad)}); "
        "remove or impute them before training"
    )


def _one_hot(name: str, array: np.ndarray) -> str | None:
    if not name.startswith("y") or array.ndim != 2 or array.shape[1] < 2:
        return None
    if not (np.isin(array, (0, 1)).all() and (array.sum(axis=1) == 1).all()):
        return None
    return (
        f"{name} holds one-hot rows (shape {array.shape}); bnbench's classifiers take class "
        f"indices: store {name}.argmax(axis=1) instead"
    )


def _bad_label_values(name: str, y: np.ndarray, num_classes: int | None) -> str | None:
    if y.ndim > 1 and y.shape[1:] != (1,) * (y.ndim - 1):
        return f"{name} has shape {y.shape}; a classifier takes one class index per example"
    y = y.reshape(-1).astype(np.float64)  # exact for any realistic label; bool gets arithmetic
    tests = [
        (y != np.round(y), "fractional {}"),
        (y < 0, "negative {}"),
    ]
    if num_classes is not None:
        tests.append((y >= num_classes, f"{{}} >= {num_classes}"))
    for bad, what in tests:
        if bad.any():
            first, count = int(np.argmax(bad)), int(bad.sum())
            labels = what.format(_plural(count, "label"))
            return (
                f"{name} holds {count} {labels} (first at index {first}: "
                f"{_number(y[first])}); {_expected(num_classes)}"
            )
    return None


def _plural(count: int, one: str, many: str | None = None) -> str:
    return one if count == 1 else many or f"{one}s"


def _where(name: str, mask: np.ndarray) -> str:
    index = np.unravel_index(int(np.argmax(mask)), mask.shape)
    cell = ", ".join(str(int(i)) for i in index)
    if mask.ndim == 1:
        return f"at index {cell}"
    return f"in example {int(index[0])}, at {name}[{cell}]"


def _expected(num_classes: int | None) -> str:
    if num_classes is None:
        return "class labels must be whole numbers counting from 0"
    return f"this dataset's class labels are 0..{num_classes - 1}"


def _number(value: float | np.generic) -> str:
    """A label or value as a user would type it: 3 rather than 3.0 or np.int64(3)."""
    as_float = float(value)
    return str(int(as_float)) if as_float.is_integer() else f"{as_float:g}"
