"""A hand-written ablation results tree for the table, LaTeX and report tests: 3 arms × 2 learning
rates × 3 seeds, with a diverged, a failed and an incomplete run and one that misses the target."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.support.specs import write_summary

ARMS = ("bn_before", "bn_after", "no_norm")  # not alphabetical: the spec's order must win
REFERENCE = "no_norm"
LEARNING_RATES = (0.01, 0.1)
SEEDS = (0, 1, 2)
KEY = "training.learning_rate"
SPECIAL = {
    ("bn_after", 0.1, 1): "diverged",
    ("no_norm", 0.1, 2): "failed",
    ("bn_before", 0.01, 2): "incomplete",
}
MISSES_TARGET = {("bn_after", 0.01, 2)}


def _accuracy(arm: str, learning_rate: float, seed: int) -> float:
    a = ARMS.index(arm)
    return 0.6 + 0.1 * (2 - a) + 0.2 * learning_rate + 0.013 * ((seed * (a + 2)) % 5)


def _steps(arm: str, learning_rate: float, seed: int) -> int | None:
    if (arm, learning_rate, seed) in MISSES_TARGET:
        return None
    return 100 * (ARMS.index(arm) + 1) + 10 * seed + (30 if learning_rate == 0.01 else 0)


def _summary(run_id: str, arm: str, learning_rate: float, seed: int, status: str) -> dict:
    if status == "failed":
        return {"run_id": run_id, "name": arm, "status": "failed", "error": "ValueError: boom"}
    accuracy = _accuracy(arm, learning_rate, seed)
    final = {"val_loss": 1 - accuracy + 0.05, "val_accuracy": accuracy - 0.01}
    if status == "completed":
        final.update(test_loss=1 - accuracy, test_accuracy=accuracy)
    steps = _steps(arm, learning_rate, seed)
    return {
        "run_id": run_id,
        "name": arm,
        "status": status,
        "seed": seed,
        "backend": "jax",
        "diverged_step": 40 if status == "diverged" else None,
        "total_steps": 500,
        "steps_done": 40 if status == "diverged" else 500,
        "batch_size": 32,
        "learning_rate": learning_rate,
        "metric": "accuracy",
        "final": final,
        "best": {"val_accuracy": accuracy + 0.01, "step": 400},
        "target": {
            "metric": "val_accuracy",
            "value": 0.7,
            "step": steps,
            "seconds": None if steps is None else steps / 100,
        },
        "params": {"trainable": 1000 + ARMS.index(arm), "non_trainable": 64},
        "step_time_ms": 2.0 + ARMS.index(arm) + 0.1 * seed,
        "train_seconds": 1.5,
    }


def write_tree(root: Path) -> dict[str, dict]:
    """3 arms × 2 learning rates × 3 seeds; returns run_id -> {arm, lr, seed, status, summary}."""
    (root / "runs").mkdir(parents=True)
    spec = {
        "name": "bn_placement",
        "arms": {arm: {} for arm in ARMS},
        "grid": {KEY: list(LEARNING_RATES)},
        "seeds": list(SEEDS),
        "reference": REFERENCE,
    }
    (root / "ablation.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    runs = {}
    for arm in ARMS:
        for learning_rate in LEARNING_RATES:
            for seed in SEEDS:
                run_id = f"{arm}-lr{learning_rate}-s{seed}"
                run_dir = root / "runs" / run_id
                run_dir.mkdir()
                status = SPECIAL.get((arm, learning_rate, seed), "completed")
                cell = f"{KEY}={learning_rate}"
                ablation = {"arm": arm, "grid": {KEY: learning_rate}, "seed": seed, "cell": cell}
                (run_dir / "ablation.json").write_text(json.dumps(ablation))
                config = {"name": f"bn_placement-{arm}", "seed": seed, "backend": "jax"}
                config["training"] = {"learning_rate": learning_rate, "batch_size": 32}
                (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
                (run_dir / "history.csv").write_text("step,val_loss\n")
                summary = None
                if status == "incomplete":
                    (run_dir / "INCOMPLETE").write_text("")
                else:
                    summary = _summary(run_id, arm, learning_rate, seed, status)
                    write_summary(run_dir, summary)
                runs[run_id] = dict(
                    arm=arm, lr=learning_rate, seed=seed, status=status, summary=summary
                )
    return runs
