"""The :class:`bot.ports.Tuner` port over SageMaker automatic model tuning (boto3, no SDK).

A sweep runs as one hyperparameter tuning job: SageMaker searches the sweep's ranges and
launches its trials, each a training job named ``<tuning job>-NNN-xxxxxxxx``; their state
changes and the tuning job's own reach ``functions/job_events`` through EventBridge (both
rules filter on trainbot's job prefix, which every tuning job name starts with).

Every trial is the training job a single version would get (:func:`define_training`): the
same image, script-mode keys, data channels, output prefix (the sweep's job), instances,
runtime limit, managed spot, VPC and tags (the tuning job's tags are copied to its trials).
What a tuning job's ``HyperParameterTrainingJobDefinition`` can't say, or says differently:

- no ``TensorBoardOutputConfig`` (the definition has none): a trial's TensorBoard events go
  to ``SM_OUTPUT_DATA_DIR/tensorboard`` instead (``Environment``), so they are uploaded in
  the trial's ``output.tar.gz``; there is no managed TensorBoard of a trial;
- no ``CheckpointConfig``: the definition's one S3 URI would be shared by every trial, and
  SageMaker copies it into each trial at start, so one trial would resume (or refuse) the
  checkpoint of another. A spot trial that loses its instance starts again from scratch;
- no warm pool (``KeepAlivePeriodInSeconds``): trials don't reuse instances;
- no ``EnableSageMakerMetricsTimeSeries`` (not in the definition).

Strategy ``bayesian``/``random`` use SageMaker's early stopping (``Auto``); ``hyperband``
has its own, so early stopping is ``Off`` and ``HyperbandStrategyConfig`` bounds the
resource a trial may use (its epochs, or its evaluations: see :func:`hyperband_config`).
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateHyperParameterTuningJob.html
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from bot.adapters.algorithm_catalog import PublishedAlgorithm
from bot.adapters.sagemaker.errors import (
    error_code,
    error_message,
    is_not_found,
    stop_quietly,
    translate,
)
from bot.adapters.sagemaker.request import (
    SageMakerSetup,
    define_training,
    registered_script,
    tag_list,
)
from bot.domain import (
    Algorithm,
    BackendError,
    BackendRejected,
    JobSpec,
    QuotaExceeded,
    ResourcePool,
)
from bot.domain.algorithm import HPValue
from bot.domain.events import TrainingJobDetail, TuningJobDetail
from bot.domain.naming import TUNING_JOB_NAME
from bot.domain.sweep import Sweep, Trial
from bot.domain.sweep_space import Choices, FloatRange, IntRange, SweepSpec, SweepStrategy

if TYPE_CHECKING:
    from bot.adapters.sagemaker.compute import SageMakerCompute
    from bot.config import Settings

__all__ = [
    "SageMakerTuner",
    "build_tuning_job_request",
    "hyperband_config",
    "parameter_ranges",
]

log = logging.getLogger("trainbot.compute.sagemaker")

STRATEGIES = {SweepStrategy.BAYESIAN: "Bayesian", SweepStrategy.RANDOM: "Random",
              SweepStrategy.HYPERBAND: "Hyperband"}
# A trial's TensorBoard events: in its output data, which SageMaker uploads in output.tar.gz.
TRIAL_TENSORBOARD_DIR = "/opt/ml/output/data/tensorboard"
# The keys SageMaker reads Hyperband's MaxResource from itself, then the other names of "how
# many rounds" the presets and common algorithms use; a round evaluated every `eval_every`.
EPOCH_KEYS = ("epochs", "numepochs", "n-epochs", "n_epochs", "num_epochs")
ROUND_KEYS = ("max_epochs", "max_iter", "iterations", "num_iterations", "num_round",
              "n_estimators")
EVAL_EVERY_KEYS = ("eval_every", "eval_interval")
MAX_RESOURCE = 20_000  # HyperbandStrategyConfig's ceiling
def parameter_ranges(spec: SweepSpec, *, script_mode: bool) -> dict[str, list[dict[str, Any]]]:
    """SageMaker's ``ParameterRanges`` for the sweep's ranges: ``log`` → Logarithmic scaling,
    else Linear. Categorical values are strings encoded as the trial's other hyperparameters
    are: JSON in script mode (``"adam"`` with its quotes, ``true``), else plain (``adam``);
    a bool is ``true``/``false`` either way."""
    ints: list[dict[str, Any]] = []
    floats: list[dict[str, Any]] = []
    choices: list[dict[str, Any]] = []
    for r in spec.ranges:
        scaling = "Logarithmic" if not isinstance(r, Choices) and r.log else "Linear"
        if isinstance(r, IntRange):
            ints.append({"Name": r.name, "MinValue": str(r.low), "MaxValue": str(r.high),
                         "ScalingType": scaling})
        elif isinstance(r, FloatRange):
            floats.append({"Name": r.name, "MinValue": json.dumps(float(r.low)),
                           "MaxValue": json.dumps(float(r.high)), "ScalingType": scaling})
        else:
            values = [_categorical(v, script_mode=script_mode) for v in r.values]
            if any(len(v) > 256 for v in values):
                raise BackendRejected(f"A choice of `{r.name}` is over 256 characters, more "
                                      "than SageMaker takes for a categorical value.")
            choices.append({"Name": r.name, "Values": values})
    ranges: dict[str, list[dict[str, Any]]] = {}
    for key, found in (("IntegerParameterRanges", ints), ("ContinuousParameterRanges", floats),
                       ("CategoricalParameterRanges", choices)):
        if found:
            ranges[key] = found
    return ranges


def hyperband_config(spec: SweepSpec) -> dict[str, int]:
    """``HyperbandStrategyConfig``: MinResource 1 and MaxResource, the most objective values a
    trial reports — what Hyperband counts as a trial's resource (epochs).

    Read from the spec: an epoch count (the keys SageMaker itself would read, then
    ``max_epochs``, ``max_iter``, ``iterations``, ``num_round``, ``n_estimators`` …), fixed or
    the top of its range, divided by a fixed ``eval_every`` when the algorithm reports every
    that many rounds (tabular-classification: ``max_iter=200 eval_every=10`` → 20), at most
    20 000. :class:`BackendRejected` when the spec names no such count.
    """
    rounds = None
    for key in (*EPOCH_KEYS, *ROUND_KEYS):
        swept = spec.range(key)
        if isinstance(swept, IntRange):
            rounds = swept.high
        elif _whole(spec.fixed.get(key)):
            rounds = int(spec.fixed[key])
        if rounds is not None:
            break
    if rounds is None or rounds < 1:
        raise BackendRejected(
            "Hyperband on SageMaker needs to know how many epochs a trial runs at most, and "
            "this sweep sets no epochs/max_iter/iterations.",
            hint="Use `--strategy bayesian` or `--strategy random`.")
    every = next((int(spec.fixed[k]) for k in EVAL_EVERY_KEYS
                  if k not in {r.name for r in spec.ranges} and _whole(spec.fixed.get(k))
                  and int(spec.fixed[k]) >= 1), 1)
    return {"MinResource": 1, "MaxResource": max(1, min(MAX_RESOURCE, math.ceil(rounds / every)))}


def build_tuning_job_request(
    name: str,
    sweep: Sweep,
    algorithm: Algorithm,
    pool: ResourcePool,
    published: PublishedAlgorithm | None,
    setup: SageMakerSetup,
) -> dict[str, Any]:
    """The CreateHyperParameterTuningJob keyword arguments for ``sweep`` (no I/O).

    ``published`` as for :func:`~bot.adapters.sagemaker.request.plan_launch`: the script
    mode source and images, None for a container image algorithm. :class:`BackendRejected`
    for a name SageMaker won't take and for what it can't run (see ``define_training``).
    """
    if not TUNING_JOB_NAME.match(name or ""):
        raise BackendRejected(f"`{name}` is not a valid SageMaker tuning job name.")
    spec = sweep.spec
    shared = JobSpec(
        algorithm=spec.algorithm, algorithm_version=spec.algorithm_version,
        algorithm_digest=spec.algorithm_digest, hyperparameters=spec.fixed, data=spec.data,
        pool=spec.pool, max_runtime_s=spec.max_runtime_s, spot=spec.spot, preset=spec.preset,
        data_origin=spec.data_origin)
    definition = define_training(name, sweep.name, shared, algorithm, pool, published, setup)
    fields = dict(definition.fields)
    static = fields.pop("HyperParameters")
    fields["ResourceConfig"] = {k: v for k, v in fields["ResourceConfig"].items()
                                if k != "KeepAlivePeriodInSeconds"}
    config: dict[str, Any] = {
        "Strategy": STRATEGIES[spec.strategy],
        "HyperParameterTuningJobObjective": {
            "Type": "Maximize" if spec.objective_goal == "maximize" else "Minimize",
            "MetricName": spec.objective_metric,
        },
        "ResourceLimits": {"MaxNumberOfTrainingJobs": spec.trials,
                           "MaxParallelTrainingJobs": spec.parallel},
        "ParameterRanges": parameter_ranges(spec, script_mode=published is not None),
        "TrainingJobEarlyStoppingType": (
            "Off" if spec.strategy is SweepStrategy.HYPERBAND else "Auto"),
        "RandomSeed": int.from_bytes(hashlib.sha256(sweep.name.encode()).digest()[:4]) % 2**31,
    }
    if spec.strategy is SweepStrategy.HYPERBAND:
        config["StrategyConfig"] = {"HyperbandStrategyConfig": hyperband_config(spec)}
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": config,
        "TrainingJobDefinition": {
            "StaticHyperParameters": static,
            **fields,
            "Environment": {"SM_TENSORBOARD_DIR": TRIAL_TENSORBOARD_DIR},
        },
        "Tags": tag_list({
            "trainbot:job": sweep.name,
            "trainbot:sweep": sweep.name,
            "trainbot:channel": sweep.channel,
            "trainbot:requested-by": sweep.requested_by,
        }),
    }


class SageMakerTuner:
    """The Tuner port over SageMaker automatic model tuning: SageMaker launches the trials.

    Built on the :class:`~bot.adapters.sagemaker.compute.SageMakerCompute` that launches
    single versions: its client, account settings and published catalog, so a trial is
    exactly the training job a version would be.
    """

    name = "sagemaker"
    launches_trials = True

    def __init__(self, compute: SageMakerCompute) -> None:
        self.compute = compute
        self.sagemaker = compute.sagemaker
        self.setup: SageMakerSetup = compute.setup

    @classmethod
    def from_settings(cls, settings: Settings) -> SageMakerTuner:
        """Over a :class:`SageMakerCompute` wired from the same settings."""
        from bot.adapters.sagemaker.compute import SageMakerCompute

        return cls(SageMakerCompute.from_settings(settings))

    # -- the Tuner port -----------------------------------------------------------------------

    def begin(self, sweep: Sweep, algorithm: Algorithm, pool: ResourcePool,
              backend_name: str) -> None:
        """CreateHyperParameterTuningJob named ``backend_name``. A create retried after a
        lost response finds its own tuning job (``ResourceInUse``): accepted when it is the
        same request. ``BackendError`` (its subclasses) otherwise."""
        published = self._script_source(algorithm, sweep.spec)
        request = build_tuning_job_request(backend_name, sweep, algorithm, pool, published,
                                           self.setup)
        spot = bool(request["TrainingJobDefinition"].get("EnableManagedSpotTraining"))
        try:
            self.sagemaker.create_hyper_parameter_tuning_job(**request)
        except ClientError as exc:
            if error_code(exc) != "ResourceInUse":
                raise _tuning_error(exc, pool=pool, spot=spot) from exc
            if not self._is_same_job(request):
                raise BackendRejected(
                    f"A SageMaker tuning job named `{backend_name}` already exists.",
                    hint="SageMaker never frees a name; start the sweep again.") from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc
        log.info("began %s as SageMaker tuning job %s (%d trials, %d at a time)",
                 sweep.label, backend_name, sweep.spec.trials, sweep.spec.parallel)

    def suggest(self, sweep: Sweep, trials: Sequence[Trial]) -> dict[str, HPValue]:
        """Never called (SageMaker chooses each trial's values): nothing to suggest."""
        return {}

    def should_prune(self, sweep: Sweep, trials: Sequence[Trial], trial: Trial) -> bool:
        """Never called (SageMaker stops trials early itself): never prune."""
        return False

    def stop(self, sweep: Sweep) -> None:
        """StopHyperParameterTuningJob (its running trials stop with it). A tuning job that
        already ended or never existed is not an error: SageMaker answers a ValidationException
        (or ResourceNotFound)."""
        name = sweep.backend_name
        if not name:
            return
        stop_quietly(lambda: self.sagemaker.stop_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name), name)

    # -- reading (the reconcile's repair of a missed event) ------------------------------------

    def describe(self, sweep: Sweep) -> TuningJobDetail | None:
        """DescribeHyperParameterTuningJob as a :class:`TuningJobDetail`; None when the sweep
        has no tuning job or SageMaker doesn't know it."""
        if not sweep.backend_name:
            return None
        try:
            found = self.sagemaker.describe_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=sweep.backend_name)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc
        return TuningJobDetail.model_validate(found)

    def trial_names(self, sweep: Sweep) -> list[str]:
        """The names of the training jobs the sweep's tuning job launched, oldest first
        (ListTrainingJobsForHyperParameterTuningJob, every page)."""
        if not sweep.backend_name:
            return []
        names: list[tuple[Any, str]] = []
        kwargs: dict[str, Any] = {"HyperParameterTuningJobName": sweep.backend_name,
                                  "MaxResults": 100}
        try:
            while True:
                page = self.sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(**kwargs)
                names += [(s.get("CreationTime"), s["TrainingJobName"])
                          for s in page.get("TrainingJobSummaries", [])]
                if not page.get("NextToken"):
                    break
                kwargs["NextToken"] = page["NextToken"]
        except ClientError as exc:
            if is_not_found(exc):
                return []
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc
        return [name for _, name in sorted(names, key=lambda p: (p[0] is None, p[0] or 0, p[1]))]

    def trial_details(self, sweep: Sweep) -> list[TrainingJobDetail]:
        """Every trial's DescribeTrainingJob, oldest first: what their state-change events
        would have said (for a sweep whose events were missed or came out of order)."""
        out = []
        for name in self.trial_names(sweep):
            try:
                found = self.sagemaker.describe_training_job(TrainingJobName=name)
            except ClientError as exc:
                if is_not_found(exc):
                    continue
                raise translate(exc) from exc
            except BotoCoreError as exc:
                raise translate(exc) from exc
            out.append(TrainingJobDetail.model_validate(found))
        return out

    # -- helpers ---------------------------------------------------------------------------------

    def _script_source(self, algorithm: Algorithm, spec: SweepSpec) -> PublishedAlgorithm | None:
        """As the compute launches a version: a preset's published entry (at the version the
        spec names), a team's script algorithm's registration, None for an image."""
        if algorithm.source is None:
            published = self.compute.published_algorithm(algorithm.id)
            if published.version != spec.algorithm_version:
                raise BackendRejected(
                    f"`{algorithm.id}` is published at {published.version}, but this sweep "
                    f"needs {spec.algorithm_version}.",
                    hint="Run `trainbot algorithms publish` to publish the current code.")
            return published
        if algorithm.source.kind == "image":
            return None
        return registered_script(algorithm)

    def _is_same_job(self, request: dict[str, Any]) -> bool:
        try:
            found = self.sagemaker.describe_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=request["HyperParameterTuningJobName"])
        except (ClientError, BotoCoreError):
            return False
        mine = request["TrainingJobDefinition"]
        theirs = found.get("TrainingJobDefinition") or {}
        return (theirs.get("StaticHyperParameters") == mine["StaticHyperParameters"]
                and (theirs.get("AlgorithmSpecification") or {}).get("TrainingImage")
                == mine["AlgorithmSpecification"]["TrainingImage"])


def _categorical(value: HPValue, *, script_mode: bool) -> str:
    if isinstance(value, str) and not script_mode:
        return value
    return json.dumps(value)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tuning_error(exc: ClientError, *, pool: ResourcePool, spot: bool) -> BackendError:
    """A quota on tuning jobs themselves (how many run at once, how many trials) is not the
    instance quota :func:`translate` reports for ResourceLimitExceeded."""
    message = error_message(exc)
    if error_code(exc) == "ResourceLimitExceeded" and "tuning" in message.lower():
        return QuotaExceeded(
            f"Your account's quota for SageMaker tuning jobs is exhausted: {message}",
            hint="Wait for a running sweep to end, or ask AWS to raise the tuning job quota "
                 "in Service Quotas (console → Service Quotas → Amazon SageMaker).")
    return translate(exc, instance_type=pool.instance_type, spot=spot)
