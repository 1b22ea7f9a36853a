"""Hand-built claim results trees for the claims tests, written through the run-directory contract.

`Tree` collects runs (arm, grid cell, seed, final numbers, target step, diagnostics rows, and
optionally a history) and writes them as an ablation results tree that
`bnbench.claims.evidence.load_evidence` reads: no training, no Keras. Each claim's scenario
builder below writes a tree whose data carry a chosen effect, so a test can set the effect and
check the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnbench.analysis.tables import build_report
from bnbench.claims.evidence import Evidence, load_evidence
from bnbench.results import rundir
from bnbench.results.diagnostics import GRADIENT_NORMS, TRAIN_INFERENCE_GAP, percentile_columns
from bnbench.results.files import write_csv, write_yaml
from bnbench.results.layout import ABLATION, run_path
from tests.support.specs import write_summary

# Six seeds: the fewest with which an exact (sign-flip or sign) test can reach 95% (1/2**6).
SEEDS = (0, 1, 2, 3, 4, 5)
DIAGNOSTIC_COLUMNS = {
    "gradient_norms": list(GRADIENT_NORMS.columns),
    "activation_percentiles": list(percentile_columns([15, 50, 85])),
    "train_inference_gap": list(TRAIN_INFERENCE_GAP.columns),
}


@dataclass
class Tree:
    """A claim's results tree, built run by run."""

    name: str
    arms: list[str]
    grid: dict[str, list[Any]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    # Added to every run's config.yaml (e.g. a dataset section for a rule that reads the data).
    config: dict[str, Any] = field(default_factory=dict)

    def add(self, arm: str, seed: int, cell: dict[str, Any] | None = None, *,
            status: str = "completed", test: float | None = 0.9, val: float | None = None,
            steps: int | None = None, total: int = 400, target: bool = False,
            final: dict[str, float] | None = None,
            diagnostics: dict[str, list[list[Any]]] | None = None,
            history: dict[str, list[float]] | None = None) -> None:  # fmt: skip
        """Record one run; `test`/`val` are accuracies, `steps` its steps to the target;
        `history` is its history.csv by column ("step" and the recorded quantities)."""
        self.runs.append(dict(arm=arm, seed=seed, cell=cell or {}, status=status, test=test,
                              val=test if val is None else val, steps=steps, total=total,
                              target=target, final=final or {},
                              diagnostics=diagnostics or {}, history=history))  # fmt: skip

    def write(self, root: Path) -> Path:
        """Write the tree under `root/<name>/` and its runs.csv; returns the folder."""
        folder = root / self.name
        folder.mkdir(parents=True, exist_ok=True)
        write_yaml(folder / ABLATION, {"name": self.name, "arms": {a: {} for a in self.arms},
                                        "grid": self.grid, "reference": self.arms[0]})  # fmt: skip
        for run in self.runs:
            self._write_run(folder, run)
        build_report(folder)
        return folder

    def evidence(self, root: Path) -> Evidence:
        return load_evidence(self.write(root))

    def _write_run(self, folder: Path, run: dict[str, Any]) -> None:
        cell = run["cell"]
        label = ",".join(f"{k}={v}" for k, v in cell.items())
        run_id = f"{run['arm']}-{'-'.join(str(v) for v in cell.values())}-s{run['seed']}"
        path = run_path(folder, run_id)
        rundir.write_entry(path, {"arm": run["arm"], "grid": cell, "seed": run["seed"],
                                  "cell": label})  # fmt: skip
        write_yaml(path / rundir.CONFIG, {"name": run["arm"], "seed": run["seed"], **self.config})
        if run["history"] is not None:
            columns = list(run["history"])
            rows = [dict(zip(columns, values, strict=True))
                    for values in zip(*run["history"].values(), strict=True)]  # fmt: skip
            write_csv(path / rundir.HISTORY, rows, columns)
        final = {}  # `final` given to `add` overrides these
        if run["test"] is not None and run["status"] == "completed":
            final |= {"test_loss": 1 - run["test"], "test_accuracy": run["test"]}
        if run["val"] is not None:
            final |= {"val_loss": 1 - run["val"], "val_accuracy": run["val"]}
        final |= run["final"]
        summary = {"status": run["status"], "name": run["arm"], "seed": run["seed"],
                   "metric": "accuracy", "final": final, "total_steps": run["total"],
                   "steps_done": run["total"], "batch_size": 32, "learning_rate": 0.1,
                   "chance_accuracy": 0.1}  # fmt: skip
        if run["target"]:
            summary["target"] = {"metric": "val_accuracy", "value": 0.9, "step": run["steps"]}
        write_summary(path, summary)
        for name, rows in run["diagnostics"].items():
            columns = DIAGNOSTIC_COLUMNS[name]
            write_csv(rundir.diagnostics_path(path, name),
                      [dict(zip(columns, row, strict=True)) for row in rows], columns)  # fmt: skip
