"""Presets (ModelArts' job parameters): save from a version or from arguments; list/show/delete."""

from __future__ import annotations

from bot.domain import Conflict, InvalidInput, Preset
from bot.domain.preset import PRESET_NAME
from bot.services.context import Deps
from bot.services.requests import build_spec

__all__ = ["delete_preset", "list_presets", "save_preset", "show_preset"]

import re

_NAME = re.compile(PRESET_NAME)


def save_preset(
    deps: Deps,
    *,
    user: str,
    name: str,
    description: str | None = None,
    from_job: str | None = None,
    from_version: int | None = None,
    algorithm: str | None = None,
    params: dict[str, object] | None = None,
    pool: str | None = None,
    data: dict[str, str] | None = None,
) -> Preset:
    """Save a preset; its name is immutable and unique in the team's scope."""
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"`{name[:70]}` is not a valid preset name.",
            hint="Use 1-64 letters, digits, '-' or '_'.",
        )
    if description is not None and len(description) > 256:
        raise InvalidInput("A preset description can be at most 256 characters.")
    base = None
    if from_job:
        number = from_version or deps.store.get_job(from_job).latest_version
        base = deps.store.get_version(from_job, number).spec
        algo = deps.algorithms.for_spec(base)  # the exact algorithm version it ran
    elif algorithm:
        algo = deps.algorithms.get(algorithm)
    else:
        raise InvalidInput("Say which algorithm the preset runs, or `--from JOB [vN]`.")
    chosen_pool = deps.catalog.pool(pool or (base.pool if base else deps.catalog.default_pool))
    spec = build_spec(deps, algo, params=params or {}, pool=chosen_pool, data=data or {},
                      base=base, user=user)
    spec = spec.model_copy(update={"preset": None})
    now = deps.clock.now()
    preset = Preset(name=name, scope=deps.scope, description=description or "", spec=spec,
                    owner=user, created_at=now, updated_at=now)
    try:
        return deps.store.create_preset(preset)
    except Conflict:
        raise Conflict(
            f"A preset named `{name}` already exists.",
            hint="Preset names can't be reused; pick another or delete the old one first.",
        ) from None


def list_presets(deps: Deps) -> list[Preset]:
    return deps.store.list_presets(deps.scope)


def show_preset(deps: Deps, name: str) -> Preset:
    return deps.store.get_preset(deps.scope, name)


def delete_preset(deps: Deps, *, user: str, name: str) -> Preset:
    preset = deps.store.get_preset(deps.scope, name)
    deps.policy.check_delete_preset(user, preset)
    deps.store.delete_preset(deps.scope, name)
    return preset
