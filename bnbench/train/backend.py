"""Choosing and activating the Keras backend, before Keras is imported.

Keras reads `KERAS_BACKEND` once, at import. Everything that trains calls `activate()` first;
nothing at module level in bnbench imports Keras, so `bnbench --help` stays fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from bnbench.config.backend_policy import BACKENDS, installed
from bnbench.errors import SpecError
from bnbench.train.instruction_set import apply_cap


def quiet_environment() -> None:
    """Silence TensorFlow's C++ log unless the user asked for it (TF_CPP_MIN_LOG_LEVEL)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the duration.

    TensorFlow's native libraries log at load time, before absl reads TF_CPP_MIN_LOG_LEVEL, and
    write straight to the descriptor, so only a descriptor-level redirect hides them. Python
    exceptions raised meanwhile still propagate and are printed after the restore.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def import_keras() -> None:
    """Import Keras (and so its backend library), hiding the native start-up log.

    Set BNBENCH_TF_LOGS=1 to see that log.
    """
    if "keras" in sys.modules or os.environ.get("BNBENCH_TF_LOGS") == "1":
        import keras

        return
    with _stderr_silenced():
        # On TensorFlow, Keras imports it here, where its start-up log is hidden. On JAX nothing
        # needs TensorFlow (bnbench feeds arrays itself), so it is not imported: that saves its
        # import time (~6 s on a 2-core machine) in every worker.
        import keras  # noqa: F401


def limit_threads(threads: int) -> None:
    """Cap the math libraries of this process at `threads` threads (call before importing them)."""
    value = str(max(1, threads))
    for name in (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
    ):
        os.environ[name] = value
    flags = os.environ.get("XLA_FLAGS", "")
    if threads == 1 and "xla_cpu_multi_thread_eigen" not in flags:
        flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = flags.strip()


def worker_cores(slot: int, jobs: int) -> list[int]:
    """The CPU cores of worker `slot` (0-based) when `jobs` workers share this process's cores.

    Each worker gets its own contiguous share, so that workers do not migrate between cores and
    compete for the same ones (JAX's runtime and compiler start threads on every core they can
    see). With more workers than cores, workers share cores round-robin.
    """
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not available or jobs < 1:
        return available
    if jobs >= len(available):
        return [available[slot % len(available)]]
    share = len(available) // jobs
    return available[slot * share : (slot + 1) * share]


def pin_to_cores(cores: list[int]) -> None:
    """Run this process (and the threads it starts from now on) on `cores` only."""
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)


def activate(backend: str) -> None:
    """Make `backend` the Keras backend of this process.

    Raises:
        SpecError: the backend is not installed, or Keras was already imported with another one.
    """
    if backend not in BACKENDS:
        raise SpecError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    if not installed(backend):
        raise SpecError(
            f"backend {backend!r} is not installed; install it (pip install {backend}) "
            "or choose another backend"
        )
    quiet_environment()
    try:
        apply_cap()
    except ValueError as error:
        raise SpecError(str(error)) from None
    if "keras" in sys.modules:
        import keras

        current = keras.backend.backend()
        if current != backend:
            raise SpecError(
                f"this process already runs Keras on {current!r}; a {backend!r} run needs a "
                "fresh process (bnbench ablate runs each run in its own worker)"
            )
        return
    os.environ["KERAS_BACKEND"] = backend
    if backend == "jax":
        compilation_cache()
    import_keras()


def compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at bnbench's cache folder (before JAX loads).

    Every run builds a fresh model, so JAX traces and compiles its train and evaluate functions
    again, even for the seeds of one arm, whose shapes are identical: on a 2-core CPU that is
    seconds per run for a small MLP. With the cache, a later run (in the same worker or another
    process) loads the compiled program instead; the program is the same, so are the numbers.
    The folder is `$BNBENCH_CACHE_DIR/jax` (default `~/.cache/bnbench/jax`); set
    BNBENCH_JAX_CACHE=0 to turn it off. A JAX_COMPILATION_CACHE_DIR already set is kept.

    Returns:
        The cache folder, or None when the cache is off.
    """
    if os.environ.get("BNBENCH_JAX_CACHE") == "0":
        return None
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bnbench"
    root = Path(os.environ.get("BNBENCH_CACHE_DIR", default)).expanduser()
    folder = Path(os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(root / "jax")))
    # Cache every program: bnbench's are small and quick to compile, but there are many runs.
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    return folder


def set_random_seed(seed: int) -> None:
    """`keras.utils.set_random_seed`, without importing TensorFlow on the other backends.

    Keras seeds TensorFlow too whenever it can be imported, which imports it (~6 s and its
    start-up log) in a JAX process that never uses it. TensorFlow is made unimportable for the
    duration of the call; Keras then records it as unavailable, so nothing imports it later.
    """
    import keras

    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
        return
    sys.modules["tensorflow"] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        keras.utils.set_random_seed(seed)
    finally:
        del sys.modules["tensorflow"]
