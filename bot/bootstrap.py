"""All wiring in one place: settings → adapters → :class:`Deps`.

Heavy or optional adapters are imported inside the functions that build them, so importing
this module costs nothing on the Slack ack path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bot.aws import LazyClient, aws_region
from bot.catalog import Catalog, load_algorithms, load_budgets, load_pools
from bot.clock import SystemClock
from bot.config import Settings
from bot.domain import ConfigError
from bot.ports import Chat, Compute, DataGuard, FileInbox, JobStore, ModelRegistry, Tuner
from bot.services.algorithms import AlgorithmOf, Algorithms
from bot.services.authz import MembershipCheck, Policy, no_groups
from bot.services.context import Deps, NullChat, StoreOnlyModels

if TYPE_CHECKING:
    from bot.adapters.file_store import FileStorage

__all__ = [
    "ChatFor",
    "build_catalog",
    "build_compute",
    "build_deps",
    "build_file_storage",
    "build_model_registry",
    "build_policy",
    "build_store",
    "run_data_dirs",
    "slack_files_dir",
    "start_reporting",
    "stuck_after",
]

log = logging.getLogger("trainbot")


def build_catalog(settings: Settings) -> Catalog:
    return Catalog(
        algorithms=load_algorithms(settings.algorithms_dir),
        pools=load_pools(settings.pools),
        algorithms_root=settings.algorithms_dir,
    )


def build_store(settings: Settings) -> JobStore:
    if settings.store == "dynamodb":
        from bot.adapters.dynamodb.store import DynamoStore

        aws_region()  # fail at start, naming the variable, rather than on first use
        return DynamoStore(settings.table, client=LazyClient("dynamodb"))
    from bot.adapters.sqlite import SqliteStore

    private_home(settings.home)
    private_file(settings.db_path)
    return SqliteStore(settings.db_path)


def private_home(home: Path) -> None:
    """Create ``TRAINBOT_HOME`` readable by its owner only (it holds data, logs, runs)."""
    if not home.exists():
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        home.chmod(0o700)  # mkdir's mode is masked by the umask


def private_file(path: Path) -> None:
    """Create ``path`` (if missing) as 0600 and tighten it if it is ours: SQLite creates its
    WAL and journal files with the database file's mode, so they follow."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        if os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def build_compute(settings: Settings, catalog: Catalog, *,
                  detach_tensorboard: bool = False) -> Compute:
    if settings.compute == "sagemaker":
        from bot.adapters.sagemaker.compute import SageMakerCompute

        return SageMakerCompute.from_settings(settings, catalog)
    from bot.adapters.local.compute import LocalCompute
    from bot.adapters.local_data import LocalData
    from bot.adapters.tensorboard_local import LocalTensorBoard

    # An explicit TRAINBOT_TENSORBOARD_PORT is kept to; the default 6006 falls back to the
    # next free port, as TensorBoard does (6006 is often an ML engineer's own TensorBoard).
    tensorboard = LocalTensorBoard(
        settings.runs_dir, port=settings.tensorboard_port, state_dir=settings.home,
        port_fallback="tensorboard_port" not in settings.model_fields_set,
        detach=detach_tensorboard)
    return LocalCompute(settings.runs_dir, algorithms_root=settings.algorithms_dir,
                        job_prefix=settings.job_prefix, tensorboard=tensorboard,
                        data=LocalData(run_data_dirs(settings)))


ChatFor = Callable[[Compute, AlgorithmOf, Policy], Chat]
"""Builds the Chat of a Deps from the parts it tells about (Slack: the card's links come
from the compute, the approvers from the policy)."""


def build_policy(settings: Settings, *, is_member: MembershipCheck | None = None) -> Policy:
    return Policy(
        approvers=list(settings.approvers), admins=list(settings.admins),
        channels=list(settings.channels), rerun_approval=settings.rerun_approval,
        allow_self_approval=settings.allow_self_approval,
        approval_ttl_minutes=settings.approval_ttl_minutes,
        is_member=is_member or no_groups,
        algorithm_publishers=list(settings.algorithm_publishers),
        max_active_per_user=settings.max_active_per_user,
        max_active_per_channel=settings.max_active_per_channel,
        budgets=load_budgets(settings.budgets) if settings.budgets else [],
    )


def build_deps(
    settings: Settings,
    *,
    chat: Chat | None = None,
    chat_for: ChatFor | None = None,
    is_member: MembershipCheck | None = None,
    store: JobStore | None = None,
    compute: Compute | None = None,
    files: FileInbox | None = None,
    models: ModelRegistry | None = None,
    tuner: Tuner | None = None,
    recover: bool = True,
    drive_sweeps: bool = True,
    detach_tensorboard: bool = False,
) -> Deps:
    """The one place a :class:`Deps` is put together; the entry points only choose parts.

    ``chat`` or ``chat_for`` (built from the compute, algorithm lookup and policy it tells
    about); neither: nobody is told (the CLI prints). ``files``: chat files usable as data.
    ``detach_tensorboard``: a TensorBoard server this process starts outlives it (the
    short-lived CLI); otherwise it is stopped when this process exits. ``recover``: a
    backend that supervises its runs itself (local) takes back the active versions a
    previous process started; ``drive_sweeps``: with it, the sweeps this bot runs itself go
    on from where the store says (a long-lived bot; a one-off CLI command leaves them to it).
    """
    catalog = build_catalog(settings)
    policy = build_policy(settings, is_member=is_member)
    compute = compute or build_compute(settings, catalog, detach_tensorboard=detach_tensorboard)
    store = store or build_store(settings)
    algorithms = Algorithms(catalog, store, settings.scope)
    deps = Deps(
        store=store,
        compute=compute,
        catalog=catalog,
        clock=SystemClock(),
        policy=policy,
        chat=chat or (chat_for(compute, algorithms.find, policy) if chat_for else NullChat()),
        job_prefix=settings.job_prefix,
        scope=settings.scope,
        stuck_after=stuck_after(settings),
        local_data=_local_data(settings),
        files=files,
        models=models or build_model_registry(settings),
        tuner=tuner or build_tuner(settings, compute),
        given_algorithms=algorithms,
    )
    start_reporting(deps, recover=recover, drive_sweeps=drive_sweeps)
    return deps


def build_tuner(settings: Settings, compute: Compute) -> Tuner | None:
    """What searches sweeps: SageMaker automatic model tuning on AWS; Optuna, driven by
    trainbot, on the embedded default."""
    if settings.compute == "sagemaker":
        from bot.adapters.sagemaker.compute import SageMakerCompute
        from bot.adapters.sagemaker.tuning import SageMakerTuner

        # The compute's own client, settings and catalog: a trial is exactly the training
        # job a single version would get.
        if isinstance(compute, SageMakerCompute):
            return SageMakerTuner(compute)
        return SageMakerTuner.from_settings(settings)
    from bot.adapters.optuna_tuner import OptunaTuner

    return OptunaTuner()


def build_model_registry(settings: Settings) -> ModelRegistry:
    """Where registered models also go: SageMaker's Model Registry on AWS; the store alone
    on the embedded default."""
    if settings.compute == "sagemaker":
        from bot.adapters.sagemaker.models import SageMakerModelRegistry

        return SageMakerModelRegistry.from_settings(settings)
    return StoreOnlyModels()


def _local_data(settings: Settings) -> DataGuard | None:
    if settings.compute == "sagemaker":
        return None
    from bot.adapters.local_data import LocalData

    return LocalData(settings.data_dirs)


def slack_files_dir(settings: Settings) -> Path:
    """Where files shared in Slack are kept locally: apart from the data folders, so that a
    Slack user can't name another user's file by its path — only by a link they can see."""
    return settings.home / "slack-files"


def run_data_dirs(settings: Settings) -> list[Path]:
    """The folders a local run may read: the data folders and the Slack files' store (a
    spec names a file there only when the bot fetched it for the requester)."""
    return list(dict.fromkeys([*settings.data_dirs, slack_files_dir(settings)]))


def build_file_storage(settings: Settings) -> FileStorage:
    """Where files shared in Slack are stored: S3 on AWS, ``$TRAINBOT_HOME/slack-files``
    locally."""
    from bot.adapters.file_store import LocalFileStorage, S3FileStorage

    if settings.compute == "sagemaker":
        if not settings.bucket:
            raise ConfigError("TRAINBOT_BUCKET is not set: files shared in Slack are stored "
                              "there for training.")
        return S3FileStorage(LazyClient("s3"), settings.bucket, settings.scope,
                             kms_key_id=settings.kms_key_id)
    private_home(settings.home)
    return LocalFileStorage(slack_files_dir(settings))


def start_reporting(deps: Deps, *, recover: bool, drive_sweeps: bool = True) -> None:
    """Runs the compute supervises itself (local) report through the same service
    SageMaker's EventBridge events reach; SageMaker's compute does nothing here."""
    from bot.services.state_changes import ServiceEvents

    active = [v for v in deps.store.list_active() if v.backend_job_name] if recover else []
    deps.compute.start_reporting(ServiceEvents(deps), active)
    if recover and drive_sweeps and deps.tuner is not None and not deps.tuner.launches_trials:
        # Sweeps this bot drives go on from where the store says (a restart resumes them).
        from bot.services.sweeps import resume_sweeps

        resume_sweeps(deps)


def stuck_after(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.stuck_after_minutes)
