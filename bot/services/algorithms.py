"""The algorithms a deployment offers: the presets and the team's own, registered ones.

Presets come from files read at start (``Catalog``); registered algorithms from the store,
read on use, so every process — each Lambda function included — sees a new one at once.
A version always resolves to exactly what it ran (``JobSpec.algorithm_digest``), hidden or
not; a new start only to what is offered now.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from bot.catalog import Catalog
from bot.domain import Algorithm, JobSpec, NotFound
from bot.ports import JobStore

__all__ = ["AlgorithmOf", "Algorithms"]

AlgorithmOf = Callable[[JobSpec], Algorithm | None]
"""The algorithm a version (its spec) ran, or None if it can't be found: what views that only
decorate (objective first, a card's progress) take — :meth:`Algorithms.find`."""


class Algorithms:
    def __init__(self, catalog: Catalog, store: JobStore, scope: str) -> None:
        self._catalog = catalog
        self._store = store
        self._scope = scope
        # An exact version never changes: each is read from the store once per process.
        self._exact: dict[tuple[str, str], Algorithm] = {}
        self._lock = threading.Lock()

    def get(self, algo_id: str) -> Algorithm:
        """What a new start of ``algo_id`` runs: the preset, else the registered id's current
        version unless it was removed. ``NotFound`` (with the ids on offer) otherwise."""
        preset = self._catalog.algorithms.get(algo_id)
        if preset is not None:
            return preset
        try:
            found = self._store.get_registered_algorithm(self._scope, algo_id)
        except NotFound:
            found = None
        if found is None or (found.source is not None and found.source.hidden):
            offered = ", ".join(a.id for a in self.all()) or "none"
            raise NotFound(f"There is no algorithm `{algo_id}`.",
                           hint=f"Available: {offered}. `/train algorithms` lists them.")
        return found

    def for_spec(self, spec: JobSpec) -> Algorithm:
        """Exactly the algorithm a version ran (or will run)."""
        return self.exact(spec.algorithm, spec.algorithm_digest)

    def exact(self, algo_id: str, digest: str | None) -> Algorithm:
        """The preset ``algo_id`` (``digest`` None), else that registered version, hidden or
        not. ``NotFound`` if there is none."""
        if digest is None:
            return self._catalog.algorithm(algo_id)
        key = (algo_id, digest)
        with self._lock:
            cached = self._exact.get(key)
        if cached is None:
            cached = self._store.get_registered_algorithm(self._scope, algo_id, digest)
            with self._lock:
                self._exact[key] = cached
        return cached

    def find(self, spec: JobSpec) -> Algorithm | None:
        """:meth:`for_spec`, or None when it can't be found (views that only decorate)."""
        try:
            return self.for_spec(spec)
        except NotFound:
            return None

    def all(self, *, include_hidden: bool = False) -> list[Algorithm]:
        """Presets first (by id), then the registered algorithms (by id)."""
        presets = [self._catalog.algorithms[k] for k in sorted(self._catalog.algorithms)]
        custom = [a for a in self._store.list_registered_algorithms(self._scope)
                  if include_hidden or not (a.source and a.source.hidden)]
        return presets + custom

    def objectives(self) -> dict[str, str]:
        """``{algorithm id: objective metric}`` for every algorithm, hidden ones included."""
        return {a.id: a.objective.metric for a in self.all(include_hidden=True)}
