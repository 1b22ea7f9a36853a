"""`bnbench export mlflow`: an ablation as MLflow runs.

The ablation becomes an experiment of its name holding one parent run (the resolved ablation as
params; its tables and figures as artifacts) and one nested run per bnbench run:

    params     the resolved config as dotted keys (model.norm.kind, training.learning_rate, ...)
    metrics    every train_* / val_* column of history.csv at its step; final_<key> for the
               summary's final values, steps_to_target, step_time_ms, train_seconds
    tags       arm, cell, seed, status, backend, bnbench.run_id
    artifacts  config.yaml, summary.json (and traceback.txt for a failed run)

Exporting again is idempotent on the run id: a run whose files are unchanged (the
`bnbench.fingerprint` tag) is left as it is, a changed one is deleted and logged anew, so the
store never holds two runs of one bnbench run. Deleted runs stay in the store's trash until
`mlflow gc` removes them. MLflow is imported inside `export_mlflow`: it is optional and slow to
load.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from bnbench.errors import SpecError
from bnbench.export.extras import missing_extra
from bnbench.export.source import ExportRun, ExportSource, flatten, read_source
from bnbench.results import rundir
from bnbench.results.layout import ABLATION, MANIFEST, PLOTS_DIR, RUNS_CSV, TABLES
from bnbench.results.tree_files import read_ablation

DATABASE = "mlflow.db"
ARTIFACTS = "mlartifacts"
# A run's status -> its MLflow status: a diverged run is a result that ended, not a crash.
_RUN_STATUS = {"completed": "FINISHED", "diverged": "FINISHED", "failed": "FAILED"}
# Bookkeeping tags: which bnbench run an MLflow run holds, and of which files.
RUN_ID_TAG, KIND_TAG, FINGERPRINT_TAG = "bnbench.run_id", "bnbench.kind", "bnbench.fingerprint"
_PARENT_TAG = "mlflow.parentRunId"
# MLflow's batch limits (log_batch): entities per call, params per call.
_BATCH, _PARAM_BATCH = 1000, 100
_TRUNCATED = "…"
_T = TypeVar("_T")


@dataclass
class MlflowExport:
    """What an export did.

    Attributes:
        tracking_uri: The tracking store.
        experiment_id: The experiment named after the ablation.
        parent_run_id: The MLflow id of the ablation's parent run.
        logged: bnbench run ids logged (new, or replacing a changed run).
        unchanged: bnbench run ids whose MLflow run was already up to date.
    """

    tracking_uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str = ""
    logged: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def default_tracking_uri(results_dir: Path) -> str:
    """`sqlite:///<results_dir>/mlflow.db`, with an absolute path."""
    return f"sqlite:///{(Path(results_dir).resolve() / DATABASE).as_posix()}"


def export_mlflow(results_dir: Path, tracking_uri: str | None = None) -> MlflowExport:
    """Log an ablation's runs to an MLflow tracking store, replacing what changed since.

    Args:
        results_dir: An ablation results directory (or a single run directory).
        tracking_uri: Where to log; default `default_tracking_uri(results_dir)`. With a
            `sqlite:` store, a new experiment keeps its artifacts in `mlartifacts/` beside the
            database file (MLflow's own default is a folder in the working directory).

    Returns:
        What was logged.

    Raises:
        SpecError: MLflow is not installed, `results_dir` is not a results tree, or the
            experiment of that name is deleted in the store.
    """
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as error:
        raise missing_extra("mlflow", error) from error
    source = read_source(Path(results_dir))
    uri = tracking_uri or default_tracking_uri(source.root)
    client = MlflowClient(tracking_uri=uri)
    experiment_id = _experiment(client, source.name, uri)
    result = MlflowExport(uri, source.name, experiment_id)
    parent = _parent(client, experiment_id, source)
    result.parent_run_id = parent
    existing = _existing_runs(client, experiment_id)
    for run in source.runs:
        found = existing.get(run.run_id, [])
        fingerprint = run.fingerprint()
        current = [r for r in found if r.data.tags.get(FINGERPRINT_TAG) == fingerprint][:1]
        for stale in (r for r in found if r not in current):
            client.delete_run(stale.info.run_id)
        if current:
            if current[0].data.tags.get(_PARENT_TAG) != parent:
                client.set_tag(current[0].info.run_id, _PARENT_TAG, parent)
            result.unchanged.append(run.run_id)
            continue
        _log_run(client, experiment_id, parent, run, fingerprint)
        result.logged.append(run.run_id)
    return result


def _experiment(client: Any, name: str, uri: str) -> str:
    """The id of the experiment `name`, created if missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = None
        if uri.startswith("sqlite:///"):
            database = Path(uri.removeprefix("sqlite:///"))
            location = (database.parent / ARTIFACTS).resolve().as_uri()
        return str(client.create_experiment(name, artifact_location=location))
    if experiment.lifecycle_stage == "deleted":
        raise SpecError(
            f"MLflow experiment {name!r} is deleted in {uri}: restore it (mlflow experiments "
            f"restore --experiment-id {experiment.experiment_id}) or remove it for good "
            "(mlflow gc), then export again"
        )
    return str(experiment.experiment_id)


def _parent(client: Any, experiment_id: str, source: ExportSource) -> str:
    """The ablation's parent run, logged anew when its spec changed; artifacts refreshed."""
    from mlflow.entities import Param, RunTag

    spec = dict(read_ablation(source.root).data)
    fingerprint = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode())
    tags = {KIND_TAG: "ablation", FINGERPRINT_TAG: fingerprint.hexdigest()[:16]}
    found = _search(client, experiment_id, f"tags.`{KIND_TAG}` = 'ablation'")
    current = [r for r in found if r.data.tags.get(FINGERPRINT_TAG) == tags[FINGERPRINT_TAG]][:1]
    for stale in (r for r in found if r not in current):
        client.delete_run(stale.info.run_id)
    if current:
        run_id = str(current[0].info.run_id)
    else:
        run = client.create_run(experiment_id, run_name=source.name, tags=tags)
        run_id = str(run.info.run_id)
        params = [Param(key, _param_value(value)) for key, value in flatten(spec).items()]
        for chunk in _chunks(params, _PARAM_BATCH):
            client.log_batch(run_id, params=chunk)
        client.log_batch(run_id, tags=[RunTag("bnbench.ablation", source.name)])
    root = source.root
    for name in (ABLATION, MANIFEST, RUNS_CSV, *TABLES.values()):
        if (root / name).is_file():
            client.log_artifact(run_id, str(root / name))
    if (root / PLOTS_DIR).is_dir():
        client.log_artifacts(run_id, str(root / PLOTS_DIR), artifact_path=PLOTS_DIR)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _existing_runs(client: Any, experiment_id: str) -> dict[str, list[Any]]:
    """The experiment's active bnbench runs, by bnbench run id."""
    runs: dict[str, list[Any]] = {}
    for run in _search(client, experiment_id, f"tags.`{KIND_TAG}` = 'run'"):
        runs.setdefault(run.data.tags.get(RUN_ID_TAG, ""), []).append(run)
    return runs


def _search(client: Any, experiment_id: str, query: str) -> list[Any]:
    """Every active run of the experiment matching `query`, over all result pages."""
    found, token = [], None
    while True:
        page = client.search_runs([experiment_id], query, max_results=1000, page_token=token)
        found += list(page)
        token = page.token
        if not token:
            return found


def _log_run(
    client: Any, experiment_id: str, parent: str, run: ExportRun, fingerprint: str
) -> None:
    """Create the nested MLflow run of one bnbench run and log everything into it."""
    from mlflow.entities import Metric, Param

    tags = {
        "arm": run.arm,
        "cell": run.cell,
        "seed": "" if run.seed is None else str(run.seed),
        "status": run.status,
        "backend": run.summary.backend or "" if run.summary else "",
        RUN_ID_TAG: run.run_id,
        KIND_TAG: "run",
        FINGERPRINT_TAG: fingerprint,
        _PARENT_TAG: parent,
    }
    start = run.start_seconds()
    created = client.create_run(
        experiment_id, start_time=int(start * 1000), tags=tags, run_name=run.title
    )
    run_id = str(created.info.run_id)
    config = flatten(rundir.read_config(run.run_dir))
    params = [Param(key, _param_value(value)) for key, value in config.items()]
    for chunk in _chunks(params, _PARAM_BATCH):
        client.log_batch(run_id, params=chunk)
    metrics = [
        Metric(key, value, int(wall * 1000), step) for key, value, wall, step in _metrics(run)
    ]
    for batch in _chunks(metrics, _BATCH):
        client.log_batch(run_id, metrics=batch)
    for name in (rundir.CONFIG, rundir.SUMMARY, rundir.TRACEBACK):
        if (run.run_dir / name).is_file():
            client.log_artifact(run_id, str(run.run_dir / name))
    end = run.end_seconds()
    status = _RUN_STATUS.get(run.status, "KILLED")  # an unfinished run is not running here
    client.set_terminated(run_id, status, end_time=None if end is None else int(end * 1000))


def _metrics(run: ExportRun) -> Iterator[tuple[str, float, float, int]]:
    """(key, value, wall time in seconds, step) of every metric of the run; NaN left out."""
    history = run.history
    if not history.empty:
        walls = run.wall_times(history["step"])
        for column in run.metric_columns():
            for step, value, wall in zip(history["step"], history[column], walls, strict=True):
                if value == value and step == step:  # neither is NaN
                    yield column, float(value), float(wall), int(step)
    summary = run.summary
    if summary is None:
        return
    last, end = run.last_step(), run.end_seconds() or run.start_seconds()
    finals: dict[str, float | None] = {f"final_{k}": v for k, v in summary.final.items()}
    finals.update(
        steps_to_target=summary.target.step,
        step_time_ms=summary.step_time_ms,
        train_seconds=summary.train_seconds,
        diverged_step=summary.diverged_step,
    )
    for key, value in finals.items():
        if value is not None and value == value:
            yield key, float(value), end, last


def _param_value(value: Any) -> str:
    """A config value as an MLflow param: strings as they are, JSON otherwise; cut to the limit."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    limit = _param_limit()
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def _param_limit() -> int:
    """The longest param value the installed MLflow accepts (6000 characters since 2.x)."""
    try:
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH
    except ImportError:
        return 500  # MLflow 1.x's limit, the smallest there has been
    return int(MAX_PARAM_VAL_LENGTH)


def _chunks(items: Sequence[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
