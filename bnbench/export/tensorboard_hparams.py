"""The records of TensorBoard's HParams plugin, built with tensorboardX's copies of its protos.

The plugin reads three summaries, each a value with plugin metadata and no data: the experiment
(every hyperparameter with its possible values, and the metric tags) once, in any run (here the
log directory itself), and per run a session start (its hyperparameter values) and a session end
(its status). The metrics are ordinary scalars of the session's run, looked up by tag. Tags and
layout follow tensorboard/plugins/hparams/metadata.py and summary_v2.py, which import
TensorFlow; tensorboardX's protos do not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Tags of the three records, and the plugin's name and data version.
_EXPERIMENT_TAG = "_hparams_/experiment"
_SESSION_START_TAG = "_hparams_/session_start_info"
_SESSION_END_TAG = "_hparams_/session_end_info"
_PLUGIN, _VERSION = "hparams", 0
# A run's status -> its session status (a diverged run ended, but not well).
SESSION_STATUS = {
    "completed": "STATUS_SUCCESS",
    "diverged": "STATUS_FAILURE",
    "failed": "STATUS_FAILURE",
    "incomplete": "STATUS_RUNNING",
}
_STRING, _NUMBER, _BOOL = "DATA_TYPE_STRING", "DATA_TYPE_FLOAT64", "DATA_TYPE_BOOL"


def hparam_types(domains: Mapping[str, Sequence[Any]]) -> dict[str, str]:
    """Each hyperparameter's data type from its values: numbers, booleans, else strings."""
    types = {}
    for name, values in domains.items():
        kinds = {_kind(value) for value in values if value is not None}
        types[name] = kinds.pop() if len(kinds) == 1 else _STRING
    return types


def experiment_summary(
    name: str, description: str, domains: Mapping[str, Sequence[Any]], metrics: Sequence[str]
) -> Any:
    """The experiment record: hyperparameters with their values (in order), metric tags.

    Args:
        name: The experiment's name.
        description: A line about it.
        domains: Hyperparameter name -> its values over the runs.
        metrics: Scalar tags to show as metrics, e.g. "final/test_accuracy".
    """
    from google.protobuf.struct_pb2 import ListValue
    from tensorboardX.proto import api_pb2

    infos = []
    for hparam, kind in hparam_types(domains).items():
        values = ListValue()
        values.extend([_as(kind, v) for v in domains[hparam] if v is not None])
        infos.append(
            api_pb2.HParamInfo(
                name=hparam, type=api_pb2.DataType.Value(kind), domain_discrete=values
            )
        )
    metric_infos = [
        api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag), display_name=tag.split("/")[-1])
        for tag in metrics
    ]
    experiment = api_pb2.Experiment(
        name=name, description=description, hparam_infos=infos, metric_infos=metric_infos
    )
    return _plugin_summary(_EXPERIMENT_TAG, experiment=experiment)


def session_start_summary(values: Mapping[str, Any], types: Mapping[str, str], start: float) -> Any:
    """A run's session start: its hyperparameter values, typed as the experiment declares."""
    from tensorboardX.proto import plugin_hparams_pb2

    info = plugin_hparams_pb2.SessionStartInfo(start_time_secs=start)
    for name, value in values.items():
        if value is None:
            continue
        kind = types.get(name, _kind(value))
        if kind == _NUMBER:
            info.hparams[name].number_value = _as(kind, value)
        elif kind == _BOOL:
            info.hparams[name].bool_value = _as(kind, value)
        else:
            info.hparams[name].string_value = _as(kind, value)
    return _plugin_summary(_SESSION_START_TAG, session_start_info=info)


def session_end_summary(status: str, end: float) -> Any:
    """A run's session end with its bnbench status (see `SESSION_STATUS`)."""
    from tensorboardX.proto import api_pb2, plugin_hparams_pb2

    code = api_pb2.Status.Value(SESSION_STATUS.get(status, "STATUS_UNKNOWN"))
    info = plugin_hparams_pb2.SessionEndInfo(status=code, end_time_secs=end)
    return _plugin_summary(_SESSION_END_TAG, session_end_info=info)


def _plugin_summary(tag: str, **content: Any) -> Any:
    from tensorboardX.proto import plugin_hparams_pb2
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

    data = plugin_hparams_pb2.HParamsPluginData(version=_VERSION, **content)
    plugin = SummaryMetadata.PluginData(plugin_name=_PLUGIN, content=data.SerializeToString())
    return Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return _BOOL
    return _NUMBER if isinstance(value, int | float) else _STRING


def _as(kind: str, value: Any) -> Any:
    """`value` as the HParams type `kind` holds it."""
    if kind == _NUMBER:
        return float(value)
    return value if kind == _BOOL else str(value)
