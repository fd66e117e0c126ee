"""A run folder prepared the way SageMaker prepares ``/opt/ml`` for a training container.

:func:`prepare_run` writes ``input/config/*.json``, copies the algorithm's source into
``code/``, stages the data channels and writes the launch record (command, working folder,
the ``SM_*`` environment of the SageMaker training toolkit:
https://github.com/aws/sagemaker-training-toolkit/blob/master/ENVIRONMENT_VARIABLES.md).

Data channels are read-only copies made at launch in ``inputs_dir/<backend job name>/<channel>``
(see :mod:`bot.adapters.local_data`), outside ``runs_dir``: TensorBoard scans ``runs_dir``
and follows links, and must never walk a run's inputs. A version requested from Slack may
only read allow-listed folders; one from the CLI (no channel, no request key) anything the OS
user can read.

Standard library only: this module is on the Slack path.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bot.adapters.local.plan import ProcessPlan, cpu_count
from bot.adapters.local.runs import RunDir, write_json
from bot.adapters.local_data import LocalData, local_path, remove_staged
from bot.catalog import source_files
from bot.domain import (
    Algorithm,
    BackendError,
    BackendRejected,
    InvalidInput,
    JobVersion,
    ResourcePool,
)

__all__ = [
    "HOST",
    "Channels",
    "algorithm_source",
    "channel_sources",
    "check_channels",
    "image_refusal",
    "prepare_run",
]

HOST = "algo-1"

Channels = dict[str, tuple[str, bool]]
"""A version's local data channels: name → ``(URI, trusted)``."""


def image_refusal(algorithm: Algorithm) -> InvalidInput | None:
    """Why a container image algorithm can't run here (None for any other): a local run is a
    subprocess following the container contract, not a container."""
    if algorithm.source is None or algorithm.source.kind != "image":
        return None
    return InvalidInput(
        f"`{algorithm.id}` is a container image algorithm: it runs on SageMaker, and this bot "
        "trains locally.",
        hint="Ask an admin to run trainbot with TRAINBOT_COMPUTE=sagemaker, or register the "
             "algorithm's source folder (script mode) instead.")


def algorithm_source(algorithm: Algorithm, algorithms_root: Path) -> list[tuple[str, Path]]:
    """The files a run's ``code/`` gets, ``(name, file)``: a preset's folder under
    ``algorithms_root`` with the shared modules beside it (the files publishing uploads to
    SageMaker); a team's own (script) algorithm's registered folder, its own files only.

    :class:`BackendRejected` for an image algorithm or a registered folder that isn't here;
    :class:`BackendError` when the entry point is missing.
    """
    refusal = image_refusal(algorithm)
    if refusal is not None:
        raise BackendRejected(refusal.message, hint=refusal.hint)
    if algorithm.source is None:
        folder, hint = algorithms_root / algorithm.id, "Check TRAINBOT_ALGORITHMS_DIR."
        files = source_files(folder)
    else:
        location = algorithm.source.location or ""
        found = local_path(location) if location.startswith("file:") else None
        if found is None or not found.is_absolute():
            raise BackendRejected(
                f"`{algorithm.id}` is registered at {location or 'no location'}, which isn't a "
                "folder on this machine.",
                hint="Register it again here: `trainbot algorithms add FOLDER`.")
        folder, hint = found, "Register the algorithm's folder again."
        files = source_files(folder, shared=False)
    if algorithm.entry_point not in dict(files):
        raise BackendError(f"Algorithm `{algorithm.id}` has no {algorithm.entry_point} "
                           f"under {folder}.", hint=hint)
    return files


def channel_sources(version: JobVersion, algorithm: Algorithm) -> Channels:
    """The version's local data channels; ``builtin:`` ones are left out, so the script falls
    back to its bundled data. A channel default is used only if it is a file URI, and is
    trusted (the operator installed the algorithm).

    :class:`BackendRejected` for data that can't be read here (s3, not a local path).
    """
    data = {c.name: (c.default, True) for c in algorithm.channels
            if c.default and c.default.startswith("file://")}
    trusted = _from_cli(version)
    data.update({name: (uri, trusted) for name, uri in version.spec.data.items()})
    out: Channels = {}
    for name, (uri, from_owner) in data.items():
        if uri.startswith("builtin:"):
            continue
        if uri.startswith("s3://"):
            raise BackendRejected(
                f"Channel `{name}` reads {uri}: s3 data needs the sagemaker backend.",
                hint="Locally, use a file:/// path or builtin: data.")
        if local_path(uri) is None:
            raise BackendRejected(f"Channel `{name}`: `{uri}` isn't a local file or folder.")
        out[name] = (uri, from_owner)
    return out


def check_channels(channels: Channels, data: LocalData) -> None:
    """:class:`BackendRejected` for a channel this version may not read or that is missing,
    before anything is created."""
    for channel, (uri, trusted) in channels.items():
        with _data_refusal(channel):
            data.resolve(uri, trusted=trusted)


def prepare_run(run: RunDir, version: JobVersion, algorithm: Algorithm, pool: ResourcePool,
                plan: ProcessPlan, *, source: Sequence[tuple[str, Path]], channels: Channels,
                data: LocalData, inputs_dir: Path, python: str,
                hide_gpus: bool) -> dict[str, Any]:
    """Fill the (created) run folder and stage the channels under ``inputs_dir``; return the
    launch record, also written to ``launch.json``.

    ``source``: the algorithm's files, ``(name in code/, file)`` — :func:`algorithm_source`;
    ``hide_gpus``: this machine has GPUs, which a run sees only as many of as its plan gives
    it.
    """
    shutil.rmtree(run.code_dir, ignore_errors=True)
    for name, path in source:
        target = run.code_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    staged = inputs_dir / run.name
    remove_staged(staged)  # a leftover of an earlier run of the same name
    channel_dirs = {}
    if channels:
        inputs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        staged.mkdir(mode=0o700)
    for channel, (uri, trusted) in channels.items():
        channel_dirs[channel] = staged / channel
        with _data_refusal(channel):
            data.stage(uri, channel_dirs[channel], trusted=trusted)
    if channel_dirs:
        staged.chmod(0o500)  # no new channel appears beside the copies
    hps = dict(version.spec.hyperparameters)
    resource = {"current_host": HOST, "current_instance_type": pool.instance_type,
                "current_group_name": "homogeneousCluster", "hosts": [HOST],
                "instance_groups": [{"instance_group_name": "homogeneousCluster",
                                     "instance_type": pool.instance_type, "hosts": [HOST]}],
                "network_interface_name": "eth0"}
    data_config = {c: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                       "RecordWrapperType": "None"} for c in channels}
    # SageMaker delivers every hyperparameter as a JSON-encoded string.
    write_json(run.config_dir / "hyperparameters.json",
               {k: json.dumps(v) for k, v in hps.items()})
    write_json(run.config_dir / "resourceconfig.json", resource)
    write_json(run.config_dir / "inputdataconfig.json", data_config)
    env = _sm_env(run, algorithm, plan, hps, channel_dirs, resource, data_config,
                  hide_gpus=hide_gpus)
    record = {
        "name": run.name, "job": version.job, "version": version.number,
        "algorithm": algorithm.ref, "pool": pool.id, "note": plan.note,
        "command": _command(python, run, algorithm, plan, hps), "cwd": str(run.code_dir),
        "env": env, "max_runtime_s": version.spec.max_runtime_s,
        "metrics": [[m.name, m.regex] for m in algorithm.metrics],
        "progress_regex": algorithm.progress_regex,
        # Each channel's copy and the URI it came from: failure reasons name the URI.
        "inputs": {str(d): channels[c][0] for c, d in channel_dirs.items()},
    }
    write_json(run.launch_file, record)
    return record


def _from_cli(version: JobVersion) -> bool:
    """Whether the OS user asked for ``version`` through the CLI, which may then read any
    file that user can. The CLI sets neither a channel nor a request key; Slack always sets
    the key (the trigger or view id), so a Slack request without a channel is still Slack."""
    return version.channel is None and version.request_key is None


@contextlib.contextmanager
def _data_refusal(channel: str) -> Iterator[None]:
    # Same words as at request time (they name the URI the user gave), as the backend's no.
    try:
        yield
    except InvalidInput as exc:
        raise BackendRejected(f"Channel `{channel}`: {exc.message}", hint=exc.hint) from exc


def _command(python: str, run: RunDir, algorithm: Algorithm, plan: ProcessPlan,
             hps: Mapping[str, Any]) -> list[str]:
    # Script mode also passes each hyperparameter as `--name value`.
    args = [a for k, v in hps.items() for a in (f"--{k}", v if isinstance(v, str) else
                                                   json.dumps(v))]
    script = [str(run.code_dir / algorithm.entry_point), *args]
    if plan.distributed:
        return [python, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={plan.nproc}", *script]
    return [python, *script]


def _sm_env(run: RunDir, algorithm: Algorithm, plan: ProcessPlan, hps: dict[str, Any],
            channels: dict[str, Path], resource: dict[str, Any], data_config: dict[str, Any],
            *, hide_gpus: bool) -> dict[str, str]:
    """The SageMaker training toolkit's environment, pointing into the run folder (and, for
    the channels, at their read-only copies)."""
    channel_dirs = {c: str(path) for c, path in channels.items()}
    cpus = cpu_count()
    training_env = {
        "job_name": run.name, "current_host": HOST, "hosts": [HOST], "is_master": True,
        "master_hostname": HOST, "network_interface_name": "eth0",
        "num_gpus": plan.gpus, "num_cpus": cpus, "hyperparameters": hps,
        "channel_input_dirs": channel_dirs, "input_data_config": data_config,
        "input_dir": str(run.root / "input"), "input_config_dir": str(run.config_dir),
        "model_dir": str(run.model_dir), "output_dir": str(run.output_dir),
        "output_data_dir": str(run.output_data_dir), "module_dir": str(run.code_dir),
        "user_entry_point": algorithm.entry_point, "resource_config": resource,
        "log_level": 20,
    }
    env = {
        "SM_HPS": json.dumps(hps),
        "SM_INPUT_DIR": str(run.root / "input"),
        "SM_INPUT_CONFIG_DIR": str(run.config_dir),
        "SM_INPUT_DATA_CONFIG": json.dumps(data_config),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_MODEL_DIR": str(run.model_dir),
        "SM_OUTPUT_DIR": str(run.output_dir),
        "SM_OUTPUT_DATA_DIR": str(run.output_data_dir),
        "SM_CHECKPOINT_DIR": str(run.checkpoint_dir),
        "SM_TENSORBOARD_DIR": str(run.tensorboard_dir),
        "SM_MODULE_DIR": str(run.code_dir),
        "SM_USER_ENTRY_POINT": algorithm.entry_point,
        "SM_NUM_GPUS": str(plan.gpus),
        "SM_NUM_CPUS": str(cpus),
        "SM_HOSTS": json.dumps([HOST]),
        "SM_CURRENT_HOST": HOST,
        "SM_CURRENT_INSTANCE_TYPE": resource["current_instance_type"],
        "SM_NETWORK_INTERFACE_NAME": "eth0",
        "SM_RESOURCE_CONFIG": json.dumps(resource),
        "SM_TRAINING_ENV": json.dumps(training_env),
        "SM_LOG_LEVEL": "20",
        "PYTHONUNBUFFERED": "1",
    }
    env.update({f"SM_CHANNEL_{c.upper()}": d for c, d in channel_dirs.items()})
    env.update({f"SM_HP_{k.upper()}": v if isinstance(v, str) else json.dumps(v)
                for k, v in hps.items()})
    if hide_gpus or plan.gpus:
        # Only the GPUs the pool asks for; none on a CPU pool, like a CPU instance.
        env["CUDA_VISIBLE_DEVICES"] = _visible_devices(plan.gpus)
    if "OMP_WAIT_POLICY" not in os.environ:
        # Local runs share the machine (a sweep runs several at once): OpenMP threads that
        # spin while they wait take the cores the other runs need — two 2-second scikit-learn
        # runs on 2 cores took 4-9 s each spinning, 2 s each passive. A run alone is as fast.
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def _visible_devices(count: int) -> str:
    parent = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [d.strip() for d in parent.split(",")] if parent else [str(i) for i in range(count)]
    return ",".join(ids[:count])
