"""The optional dependencies of the exporters, and the message when one is missing."""

from __future__ import annotations

from bnbench.errors import SpecError

# Extra of pyproject.toml -> what it is for, in the message.
EXTRAS = {"tensorboard": "TensorBoard export", "mlflow": "MLflow export"}


def missing_extra(extra: str, error: ImportError) -> SpecError:
    """The user error for an exporter whose optional dependency cannot be imported.

    Args:
        extra: The pyproject extra that installs it ("tensorboard" or "mlflow").
        error: The ImportError raised by the import.
    """
    return SpecError(
        f"{EXTRAS[extra]} needs the optional {extra!r} dependencies ({error}); install them "
        f'with: pip install "bnbench[{extra}]"'
    )
