"""The embedded default's search: Optuna asked for each next point, trainbot runs the trials.

Stateless on purpose. Every call rebuilds an in-memory study from the trials the store
holds (each trial's parameters, state, objective and intermediate values) in trial-number
order, so Optuna's trial numbers are the sweep's, and a sampler seeded by the sweep's name
and its history gives the same next point for the same history. A restarted bot therefore
resumes a sweep where the store says it is: nothing to reload, nothing to lose, and a
finished trial is never asked again.

- ``bayesian``: TPE (its first trials random, then modelled on the completed ones);
- ``random``: random search;
- pruning, fed by the objective's intermediate values the trials print: the median rule
  for ``bayesian``/``random`` (what SageMaker's ``TrainingJobEarlyStoppingType: Auto``
  does), Hyperband for ``hyperband``.
https://optuna.readthedocs.io/en/stable/reference/generated/optuna.study.Study.html#optuna.study.Study.ask
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bot.domain.algorithm import Algorithm, HPValue
from bot.domain.events import TrainingJobDetail, TuningJobDetail
from bot.domain.pool import ResourcePool
from bot.domain.sweep import Sweep, Trial
from bot.domain.sweep_space import Choices, IntRange, SweepSpec, SweepStrategy

if TYPE_CHECKING:
    import optuna

__all__ = ["OptunaTuner"]

log = logging.getLogger("trainbot")

# Optuna's TPE models the search only after this many completed trials (random before):
# a third of the budget, between 2 and 10 (Optuna's own default is 10).
_MIN_STARTUP, _MAX_STARTUP = 2, 10


class OptunaTuner:
    """The :class:`~bot.ports.Tuner` of the embedded default (``optuna``)."""

    name = "optuna"
    launches_trials = False

    def begin(self, sweep: Sweep, algorithm: Algorithm, pool: ResourcePool,
              backend_name: str) -> None:
        """Nothing to start: trainbot asks :meth:`suggest` and launches each trial."""
        return None

    def stop(self, sweep: Sweep) -> None:
        """Nothing to stop: trainbot stops the trials it launched."""
        return None

    def describe(self, sweep: Sweep) -> TuningJobDetail | None:
        return None  # no backend search: the store is the whole story

    def trial_details(self, sweep: Sweep) -> list[TrainingJobDetail]:
        return []

    def suggest(self, sweep: Sweep, trials: Sequence[Trial]) -> dict[str, HPValue]:
        study = _study(sweep, trials)
        asked = study.ask(_distributions(sweep.spec))
        if asked.number != len(trials):  # the numbering is the sweep's: a bug otherwise
            raise RuntimeError(f"optuna numbered trial {asked.number}, expected {len(trials)}")
        return {name: _native(sweep.spec, name, value) for name, value in asked.params.items()}

    def should_prune(self, sweep: Sweep, trials: Sequence[Trial], trial: Trial) -> bool:
        if trial.finished or not trial.intermediate:
            return False
        import optuna

        others = [t for t in trials if t.number != trial.number]
        ordered = sorted([*others, trial], key=lambda t: t.number)
        if sweep.spec.strategy is not SweepStrategy.HYPERBAND:
            study = _study(sweep, ordered)
            frozen = next(t for t in study.get_trials(deepcopy=False)
                          if t.number == trial.number)
            return bool(optuna.trial.Trial(study, frozen._trial_id).should_prune())
        # Hyperband judges a trial at each rung as it reaches it: replay its steps, as the
        # trial would have been judged had the study lived in this process all along.
        study = _study(sweep, ordered, replay_only=trial.number)
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        return _replay(study, frozen._trial_id, trial.intermediate)


def _study(sweep: Sweep, trials: Sequence[Trial], *,
           replay_only: int | None = None) -> optuna.Study:
    """The study as the trials say, numbered as they are. Hyperband remembers which rungs a
    trial reached (it records them as it judges the trial, step by step), so under
    Hyperband each finished trial is replayed step by step; trial ``replay_only`` is added
    running with no values yet (the caller replays it)."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = sweep.spec
    seed = _seed(sweep.name, len(trials))
    sampler: optuna.samplers.BaseSampler
    if spec.strategy is SweepStrategy.RANDOM:
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        startup = max(_MIN_STARTUP, min(_MAX_STARTUP, spec.trials // 3))
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    pruner: optuna.pruners.BasePruner
    if spec.strategy is SweepStrategy.HYPERBAND:
        pruner = optuna.pruners.HyperbandPruner()
    else:
        # A trial is judged only once three others finished, and never on its first value
        # (steps count the objective's values from 0).
        pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    study = optuna.create_study(study_name=sweep.name, direction=spec.objective_goal,
                                sampler=sampler, pruner=pruner)
    distributions = _distributions(spec)
    states = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
              "failed": TrialState.FAIL, "running": TrialState.RUNNING}
    hyperband = spec.strategy is SweepStrategy.HYPERBAND
    for expected, trial in enumerate(trials):
        if trial.number != expected:
            raise ValueError(f"trials must be numbered 0, 1, …: trial {trial.number} at "
                             f"place {expected}")
        params = {k: _for_optuna(spec, k, v) for k, v in trial.params.items()
                  if k in distributions}
        state = states[trial.state]
        value = trial.objective if state is TrialState.COMPLETE else None
        if state is TrialState.COMPLETE and value is None:
            state = TrialState.FAIL
        dists = {k: distributions[k] for k in params}
        if hyperband and (trial.number == replay_only or (
                trial.intermediate and state is not TrialState.RUNNING)):
            study.add_trial(create_trial(state=TrialState.RUNNING, params=params,
                                         distributions=dists))
            if trial.number == replay_only:
                continue
            frozen = study.get_trials(deepcopy=False)[-1]
            _replay(study, frozen._trial_id, trial.intermediate)
            study.tell(frozen.number, value, state=state)
            continue
        study.add_trial(create_trial(state=state, value=value, params=params,
                                     distributions=dists,
                                     intermediate_values=dict(trial.intermediate)))
    return study


def _replay(study: optuna.Study, trial_id: int, values: Sequence[tuple[int, float]]) -> bool:
    """Report ``values`` step by step, judging the trial after each as it would have been;
    whether it was pruned at some step."""
    import optuna

    live = optuna.trial.Trial(study, trial_id)
    pruned = False
    for step, value in values:
        live.report(value, step)
        pruned = live.should_prune() or pruned
        if pruned:
            break
    return pruned


def _seed(name: str, history: int) -> int:
    digest = hashlib.sha256(f"{name}/{history}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _distributions(spec: SweepSpec) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for r in spec.ranges:
        if isinstance(r, Choices):
            out[r.name] = CategoricalDistribution(list(r.values))
        elif isinstance(r, IntRange):
            out[r.name] = IntDistribution(r.low, r.high, log=r.log)
        else:
            out[r.name] = FloatDistribution(r.low, r.high, log=r.log)
    return out


def _for_optuna(spec: SweepSpec, name: str, value: HPValue) -> Any:
    swept = spec.range(name)
    if isinstance(swept, IntRange) or swept is None or isinstance(swept, Choices):
        return value
    return float(value) if isinstance(value, int | float) else value


def _native(spec: SweepSpec, name: str, value: Any) -> HPValue:
    """Optuna's value as the manifest types it (numpy scalars and floats of int ranges
    never reach a trial's spec)."""
    swept = spec.range(name)
    if isinstance(swept, IntRange):
        return int(value)
    if isinstance(swept, Choices):
        return value  # one of the listed values, as it was listed
    return float(value)
