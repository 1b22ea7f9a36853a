"""Backend activation: JAX runs never load TensorFlow; the compilation cache changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.support.specs import TINY_SPEC

_RUN = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from bnbench.config.schema import RunSpec
    from bnbench.train.loop import train
    spec = RunSpec.model_validate(json.loads(sys.argv[1]))
    result = train(spec, Path(sys.argv[2]), save_model=False)
    print(json.dumps({"final": result.summary.final, "tensorflow": "tensorflow" in sys.modules}))
    """
)


def _train_on_jax(tmp_path, name: str, **env: str) -> tuple[dict, str]:
    spec = {**TINY_SPEC, "backend": "jax"}
    environment = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    environment |= {"BNBENCH_CACHE_DIR": str(tmp_path / "cache"), **env}
    environment.pop("JAX_COMPILATION_CACHE_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", _RUN, json.dumps(spec), str(tmp_path / name)],
        capture_output=True, text=True, env=environment, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.mark.slow
def test_jax_runs_skip_tensorflow_and_the_cache_changes_no_number(tmp_path):
    cold, log = _train_on_jax(tmp_path, "cold")
    warm, _ = _train_on_jax(tmp_path, "warm")
    uncached, _ = _train_on_jax(tmp_path, "uncached", BNBENCH_JAX_CACHE="0")
    assert not cold["tensorflow"], "a JAX run imported TensorFlow"
    assert "oneDNN" not in log and "cuda" not in log.lower(), log[-2000:]
    assert cold["final"] == warm["final"] == uncached["final"]
    assert any((tmp_path / "cache" / "jax").iterdir()), "nothing was cached"


_WEIGHTS = textwrap.dedent(
    """
    import os, sys
    os.environ["KERAS_BACKEND"] = "jax"
    import keras
    from bnbench.train.backend import set_random_seed
    (set_random_seed if sys.argv[1] == "bnbench" else keras.utils.set_random_seed)(3)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), keras.layers.Dropout(0.5)])
    print(repr([w.tolist() for w in model.get_weights()]), "tensorflow" in sys.modules)
    """
)


@pytest.mark.slow
def test_seeding_without_tensorflow_draws_the_same_weights():
    out = {}
    for how in ("bnbench", "keras"):
        done = subprocess.run([sys.executable, "-c", _WEIGHTS, how], capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        out[how] = done.stdout.strip().rsplit(" ", 1)
    assert out["bnbench"][0] == out["keras"][0]
    assert out["bnbench"][1] == "False" and out["keras"][1] == "True"
