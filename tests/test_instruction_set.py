"""The CPU instruction-set cap: set before a backend loads, kept when the user set one, refused
when unknown, and recorded in summary.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bnbench.train import instruction_set
from tests.support.specs import TINY_SPEC, files_under

X86 = instruction_set.platform.machine().lower() in ("x86_64", "amd64")


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("XLA_FLAGS", "ONEDNN_MAX_CPU_ISA", "BNBENCH_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.skipif(not X86, reason="the cap applies to x86-64 CPUs")
def test_the_default_caps_xla_and_onednn_at_avx2(clean_env):
    clean_env.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    assert instruction_set.apply_cap() == "AVX2"
    assert os.environ["XLA_FLAGS"].split() == ["--xla_cpu_multi_thread_eigen=false",
                                               "--xla_cpu_max_isa=AVX2"]  # fmt: skip
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == "AVX2"


def test_native_leaves_the_backends_alone_and_a_users_cap_is_kept(clean_env):
    clean_env.setenv("BNBENCH_CPU_ISA", "native")
    assert instruction_set.apply_cap() is None
    assert "XLA_FLAGS" not in os.environ and "ONEDNN_MAX_CPU_ISA" not in os.environ
    clean_env.setenv("BNBENCH_CPU_ISA", "avx")
    clean_env.setenv("XLA_FLAGS", "--xla_cpu_max_isa=SSE4_2")
    assert instruction_set.apply_cap() == "SSE4_2"


@pytest.mark.slow
def test_an_unknown_level_is_refused_by_train_and_nothing_is_written(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(TINY_SPEC))
    env = {**os.environ, "BNBENCH_CPU_ISA": "avx9000"}
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "bnbench", "train", str(spec), "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 2
    assert "BNBENCH_CPU_ISA='AVX9000' is not one of native, SSE4_2, AVX, AVX2, AVX512" in (
        done.stderr
    )
    assert files_under(out) == []


@pytest.mark.slow
@pytest.mark.skipif(not X86, reason="the cap applies to x86-64 CPUs")
def test_a_jax_run_records_its_cpu_and_the_cap_xla_honours(tmp_path):
    """The cap reaches XLA: a computation under bnbench's cap equals one under the same
    explicit XLA flag; and the run's summary says which CPU and cap trained it."""
    code = (
        "import os, sys\n"
        "from bnbench.train.backend import activate\n"
        "if sys.argv[1] == 'bnbench': activate('jax')\n"
        "else: os.environ['XLA_FLAGS'] = '--xla_cpu_max_isa=' + sys.argv[1]\n"
        "import jax, jax.numpy as jnp\n"
        "x = jax.random.normal(jax.random.key(0), (1000, 64))\n"
        "print(repr(float(jax.jit(lambda x: jnp.tanh(x).mean())(x))))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "BNBENCH_CPU_ISA")}
    env |= {"JAX_PLATFORMS": "cpu", "BNBENCH_JAX_CACHE": "0"}

    def value(mode: str) -> str:
        done = subprocess.run([sys.executable, "-c", code, mode], env=env, capture_output=True,
                              text=True, timeout=300, check=True)  # fmt: skip
        return done.stdout.strip()

    assert value("bnbench") == value("AVX2")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**TINY_SPEC, "backend": "jax"}))
    out = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "bnbench", "train", str(spec), "--out", str(out), "-q"],
                   env=env, check=True, capture_output=True, timeout=300)  # fmt: skip
    machine = json.loads((out / "summary.json").read_text())["machine"]
    assert machine["isa_cap"] == "AVX2"
    assert machine["widest_isa"] in instruction_set.LEVELS
    assert machine["processor"]


def test_widest_reads_this_machines_flags():
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if "avx2" in text:
        assert instruction_set.widest() in ("AVX2", "AVX512")
