"""AWS Lambda entry points: thin translators from a Lambda event to one ``bot`` use case.

- :mod:`functions.slack_events` — Slack (API Gateway HTTP API) → Bolt, lazy listeners
  re-invoking the function;
- :mod:`functions.job_events` — EventBridge "SageMaker Training Job State Change" → the
  state-change service, idempotent per change;
- :mod:`functions.reconcile` — the schedule → repair missed events, flag stuck versions,
  refresh live progress, expire approvals.

:mod:`functions.runtime` builds what they share once per container; :mod:`functions.
observability` holds the Powertools logger, tracer and metrics. Each handler is
``functions.<name>.handler``.
"""

__all__: list[str] = []
