"""Which Keras backend a run uses: a pure policy over the spec, decided before Keras loads.

Activating the chosen backend (environment variables, the import) is `bnbench.train.backend`.
"""

from __future__ import annotations

import importlib.util

from bnbench.config.registries import BACKEND_CHOICES
from bnbench.config.schema import Conv2DBlock, RunSpec

# The backends themselves ("auto" is a policy, not a backend).
BACKENDS = tuple(name for name in BACKEND_CHOICES if name != "auto")


def installed(backend: str) -> bool:
    """Whether the library behind a Keras backend can be imported."""
    return importlib.util.find_spec(backend) is not None


def choose_backend(spec: RunSpec) -> str:
    """The backend a run uses: the spec's, or for 'auto' the fastest measured for its shape.

    The 'auto' policy comes from `scripts/bench_backends.py` on a 2-core CPU: with plain
    `model.fit`, JAX ran the dense networks about 6x faster than TensorFlow, while TensorFlow ran
    the convolutional ones about 3.5x faster than JAX. So: any conv2d block -> TensorFlow,
    otherwise JAX (falling back to TensorFlow when JAX is not installed).
    """
    if spec.backend != "auto":
        return spec.backend
    has_conv = any(isinstance(block, Conv2DBlock) for block in spec.model.blocks)
    if has_conv or not installed("jax"):
        return "tensorflow"
    return "jax"
