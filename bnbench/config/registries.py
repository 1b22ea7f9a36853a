"""Name registries: the only way a string in a spec becomes a Keras object.

Each registry is a constant mapping from the name users write to the Keras identifier. No lookup
ever goes through `getattr` on a user string; a failed lookup lists what is available.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Literal, get_args

# Keras backends a spec may name; "auto" lets `bnbench.config.backend_policy` choose. PyTorch is
# left out until bnbench is tested on it (Keras supports it; nothing here has been run on it).
Backend = Literal["auto", "tensorflow", "jax"]
BACKEND_CHOICES: tuple[str, ...] = get_args(Backend)

FigureFormat = Literal["png", "svg", "pdf"]
FIGURE_FORMATS: tuple[str, ...] = get_args(FigureFormat)

ACTIVATIONS: Mapping[str, str] = MappingProxyType(
    {
        name: name
        for name in (
            "relu",
            "sigmoid",
            "tanh",
            "elu",
            "selu",
            "gelu",
            "silu",
            "softplus",
            "leaky_relu",
            "softmax",
            "linear",
        )
    }
)

# Plain names pass to Keras as they are, so `initializer: glorot_uniform` builds exactly the
# weights it always has; the mapping form (`{kind: random_normal, stddev: 0.1}`) is built from
# the arguments in `bnbench.model.build`.
INITIALIZERS: Mapping[str, str] = MappingProxyType(
    {
        name: name
        for name in (
            "glorot_uniform",
            "glorot_normal",
            "he_uniform",
            "he_normal",
            "lecun_uniform",
            "lecun_normal",
            "variance_scaling",
            "random_normal",
            "random_uniform",
            "zeros",
        )
    }
)

# The named variance-scaling initializers as Keras defines them: (scale, mode, distribution).
# Giving `scale` keeps the mode and distribution (He et al. 2015 use scale 2 for ReLU; Glorot &
# Bengio 2010 and LeCun et al. 1998 use 1); `variance_scaling` lets all three be chosen.
VARIANCE_SCALING: Mapping[str, tuple[float, str, str]] = MappingProxyType(
    {
        "glorot_uniform": (1.0, "fan_avg", "uniform"),
        "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
        "he_uniform": (2.0, "fan_in", "uniform"),
        "he_normal": (2.0, "fan_in", "truncated_normal"),
        "lecun_uniform": (1.0, "fan_in", "uniform"),
        "lecun_normal": (1.0, "fan_in", "truncated_normal"),
        "variance_scaling": (1.0, "fan_in", "truncated_normal"),
    }
)

OPTIMIZERS: Mapping[str, str] = MappingProxyType(
    {"sgd": "SGD", "adam": "Adam", "rmsprop": "RMSprop"}
)

LOSSES: Mapping[str, str] = MappingProxyType(
    {
        "sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
        "categorical_crossentropy": "categorical_crossentropy",
        "mse": "mean_squared_error",
        "mae": "mean_absolute_error",
        "huber": "huber",
    }
)

METRICS: Mapping[str, str] = MappingProxyType({"accuracy": "accuracy", "mae": "mae", "mse": "mse"})

# Kept here (not in bnbench.data.datasets) so that validating a spec never imports the data code.
DATASET_NAMES: tuple[str, ...] = (
    "mnist",
    "fashion_mnist",
    "cifar10",
    "cifar100",
    "digits",
    "two_scale",
    "blobs",
    "mnist1d",
    "npz",
)


# Recorded quantities where smaller is better, by the end of their name; anything else
# (accuracy, auc, ...) is maximized.
_LOWER_IS_BETTER = ("loss", "error", "mae", "mse")


def lower_is_better(name: str) -> bool:
    """Whether smaller values of a metric or recorded quantity are better.

    The one rule for every comparison bnbench makes (targets, best points, best cells): losses
    and errors, by the end of the name, so `val_loss`, `mean_absolute_error`, `test_mae` and
    `rmse` are minimized and `accuracy` is maximized.
    """
    return name.endswith(_LOWER_IS_BETTER)


def suggest(value: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_name(value: str, registry: Mapping[str, str] | Iterable[str], what: str) -> str:
    """Return `value` if it names a registry entry, else raise a ValueError listing the entries.

    Raises:
        ValueError: `value` is not in `registry`.
    """
    names = list(registry)
    if value not in names:
        raise ValueError(
            f"unknown {what} {value!r}{suggest(value, names)}; available: {', '.join(names)}"
        )
    return value
