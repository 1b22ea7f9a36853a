"""The CPU instruction set the backends may generate code for, capped so numbers travel.

The same run on two x86-64 CPUs can give different numbers: XLA (JAX) compiles for the host's
widest vector instructions and oneDNN (TensorFlow) picks its kernels by the host's instruction
set, and a wider vector sums a reduction in another order. On the development machine capping
XLA at SSE4.2 instead of AVX2 changed `tanh(x).mean()` in its 8th digit. So bnbench caps both
at AVX2 by default (`--xla_cpu_max_isa=AVX2`, `ONEDNN_MAX_CPU_ISA=AVX2`): every x86-64 CPU from
2013 on has AVX2, so a machine with AVX-512 then generates the code an AVX2 machine does.
What this cannot cap is code a library compiled in, chosen when it was built; and the thread
count changes how Eigen splits a reduction (bnbench pins it per worker). `summary.json` records
the CPU, its widest instruction set and the cap, so a reader can tell which runs should agree.

Set BNBENCH_CPU_ISA=native to let the backends use everything the CPU has, or another level
(SSE4_2, AVX, AVX2, AVX512) to cap there. A cap the user set in XLA_FLAGS or
ONEDNN_MAX_CPU_ISA is kept.
"""

from __future__ import annotations

import os
import platform

DEFAULT_CAP = "AVX2"
LEVELS = ("SSE4_2", "AVX", "AVX2", "AVX512")
# The /proc/cpuinfo flag that each level needs.
_FLAGS = {"SSE4_2": "sse4_2", "AVX": "avx", "AVX2": "avx2", "AVX512": "avx512f"}


def requested_cap() -> str | None:
    """The cap asked for (BNBENCH_CPU_ISA, default AVX2), or None for 'native' or a non-x86 CPU.

    Raises:
        ValueError: BNBENCH_CPU_ISA names no known level.
    """
    value = os.environ.get("BNBENCH_CPU_ISA", DEFAULT_CAP).strip().upper()
    if value == "NATIVE":
        return None
    if value not in LEVELS:
        raise ValueError(
            f"BNBENCH_CPU_ISA={value!r} is not one of native, {', '.join(LEVELS)}"
        )
    return value if platform.machine().lower() in ("x86_64", "amd64") else None


def apply_cap() -> str | None:
    """Cap XLA's code generation and oneDNN's kernels (call before a backend loads).

    Returns:
        The cap in effect for XLA, or None when none is.
    """
    cap = requested_cap()
    flags = os.environ.get("XLA_FLAGS", "")
    if cap is not None and "xla_cpu_max_isa" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_max_isa={cap}".strip()
    if cap is not None:
        # oneDNN spells the AVX-512 level of XLA's AVX512 'AVX512_CORE'.
        os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE" if cap == "AVX512" else cap)
    return in_effect()


def in_effect() -> str | None:
    """The XLA cap this process runs under, read back from XLA_FLAGS."""
    for flag in os.environ.get("XLA_FLAGS", "").split():
        if flag.startswith("--xla_cpu_max_isa="):
            return flag.split("=", 1)[1]
    return None


def cpu_description() -> dict[str, str]:
    """What summary.json records of the CPU: its name, widest instruction set, and the cap."""
    from bnbench.results.environment import cpu_name

    return {"processor": cpu_name(), "widest_isa": widest(), "isa_cap": in_effect() or "none"}


def widest() -> str:
    """The widest of LEVELS this CPU has ('unknown' where /proc/cpuinfo cannot tell)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])  # fmt: skip
    except OSError:
        flags = []
    found = [level for level in LEVELS if _FLAGS[level] in flags]
    return found[-1] if found else "unknown"
