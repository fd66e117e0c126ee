"""TensorBoard event files: scalars and an hparams session, written with the `tensorboard`
package alone (no torch, no TensorFlow).

The protobufs are the ones torch.utils.tensorboard.SummaryWriter writes; using them directly
keeps the scikit-learn algorithms free of a 2-second torch import. When `tensorboard` is not
installed the writer does nothing and says so once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sm_contract import log

__all__ = ["TensorBoardWriter", "open_writer"]


class TensorBoardWriter:
    """Appends to a new events.out.tfevents.* file in `logdir` (resumed runs add a file)."""

    def __init__(self, logdir: Path) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        logdir.mkdir(parents=True, exist_ok=True)
        self._events = EventFileWriter(str(logdir), flush_secs=10)

    def scalar(self, tag: str, value: float, step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        self._emit(Summary(value=[Summary.Value(tag=tag, simple_value=float(value))]), step)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Metric names such as `validation:accuracy` become tags `validation/accuracy`."""
        for name, value in values.items():
            self.scalar(name.replace(":", "/"), value, step)

    def hparams_start(self, hparams: Mapping[str, Any], metric_tags: Sequence[str]) -> None:
        """Declare this run's hyperparameters and the scalar tags the HPARAMS tab shows."""
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        infos = []
        start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
        for name, value in hparams.items():
            # bool before int/float: isinstance(True, int) holds.
            if isinstance(value, bool):
                start.hparams[name].bool_value = value
                kind = "DATA_TYPE_BOOL"
            elif isinstance(value, int | float):
                start.hparams[name].number_value = float(value)
                kind = "DATA_TYPE_FLOAT64"
            else:
                start.hparams[name].string_value = str(value)
                kind = "DATA_TYPE_STRING"
            infos.append(api_pb2.HParamInfo(name=name, type=api_pb2.DataType.Value(kind)))
        experiment = api_pb2.Experiment(
            hparam_infos=infos,
            metric_infos=[
                api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metric_tags
            ],
        )
        self._hparams_event(
            metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment)
        )
        self._hparams_event(
            metadata.SESSION_START_INFO_TAG,
            plugin_data_pb2.HParamsPluginData(session_start_info=start),
        )

    def hparams_end(self, *, success: bool) -> None:
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        status = api_pb2.Status.Value("STATUS_SUCCESS" if success else "STATUS_FAILURE")
        end = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
        self._hparams_event(
            metadata.SESSION_END_INFO_TAG,
            plugin_data_pb2.HParamsPluginData(session_end_info=end),
        )

    def flush(self) -> None:
        self._events.flush()

    def close(self) -> None:
        self._events.close()

    def _hparams_event(self, tag: str, content: Any) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboard.plugins.hparams import metadata

        content.version = metadata.PLUGIN_DATA_VERSION
        plugin = SummaryMetadata.PluginData(
            plugin_name=metadata.PLUGIN_NAME, content=content.SerializeToString()
        )
        summary_metadata = SummaryMetadata(plugin_data=plugin)
        self._emit(Summary(value=[Summary.Value(tag=tag, metadata=summary_metadata)]), 0)

    def _emit(self, summary: Any, step: int) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        self._events.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))


class _NullWriter(TensorBoardWriter):
    """Stands in when tensorboard is missing; accepts everything, writes nothing."""

    def __init__(self) -> None:
        pass

    def scalar(self, tag: str, value: float, step: int) -> None:
        pass

    def hparams_start(self, hparams: Mapping[str, Any], metric_tags: Sequence[str]) -> None:
        pass

    def hparams_end(self, *, success: bool) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def open_writer(logdir: Path) -> TensorBoardWriter:
    """A writer into `logdir`, or one that drops everything when tensorboard is missing."""
    try:
        return TensorBoardWriter(logdir)
    except ImportError:
        log("tensorboard is not installed: no TensorBoard event files for this run")
        return _NullWriter()
