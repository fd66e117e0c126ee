"""Loading the preset algorithm manifests and the resource pools from files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from bot.domain import Algorithm, ConfigError, InvalidInput, NotFound, ResourcePool

__all__ = ["Catalog", "load_algorithms", "load_pools", "source_digest", "source_files"]

DEFAULT_POOLS = Path(__file__).parent / "data" / "pools.yml"
# libyaml's parser when PyYAML was built with it: several times faster on a cold start.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_algorithms(root: Path) -> dict[str, Algorithm]:
    """Every ``<root>/<id>/manifest.yml``, validated."""
    out: dict[str, Algorithm] = {}
    if not root.is_dir():
        raise ConfigError(f"TRAINBOT_ALGORITHMS_DIR: {root} is not a directory")
    for manifest in sorted(root.glob("*/manifest.yml")):
        try:
            algo = Algorithm.model_validate(yaml.load(manifest.read_text(), Loader=_Loader))
        except (ValidationError, yaml.YAMLError) as exc:
            raise ConfigError(f"algorithm manifest {manifest} is invalid: {exc}") from exc
        if algo.id != manifest.parent.name:
            raise ConfigError(f"{manifest}: id {algo.id!r} must match its folder name")
        out[algo.id] = algo
    return out


def load_pools(path: Path | None = None) -> dict[str, ResourcePool]:
    path = path or DEFAULT_POOLS
    try:
        raw = yaml.load(path.read_text(), Loader=_Loader)
        pools = [ResourcePool.model_validate(p) for p in raw["pools"]]
    except (OSError, KeyError, TypeError, ValidationError, yaml.YAMLError) as exc:
        raise ConfigError(f"TRAINBOT_POOLS: cannot load pools from {path}: {exc}") from exc
    if not pools:
        raise ConfigError(f"TRAINBOT_POOLS: {path} defines no pools")
    return {p.id: p for p in pools}


@dataclass(frozen=True)
class Catalog:
    """The algorithms and pools a deployment offers."""

    algorithms: dict[str, Algorithm]
    pools: dict[str, ResourcePool]
    algorithms_root: Path | None = None

    @property
    def default_pool(self) -> str:
        return next(iter(self.pools))

    def algorithm(self, algo_id: str) -> Algorithm:
        try:
            return self.algorithms[algo_id]
        except KeyError:
            known = ", ".join(sorted(self.algorithms)) or "none installed"
            raise NotFound(
                f"There is no algorithm `{algo_id}`.",
                hint=f"Available: {known}. `/train algorithms` lists them.",
            ) from None

    def pool(self, pool_id: str) -> ResourcePool:
        try:
            return self.pools[pool_id]
        except KeyError:
            known = ", ".join(self.pools)
            raise InvalidInput(
                f"There is no resource pool `{pool_id}`.",
                hint=f"Pools: {known}. `/train pools` describes them.",
            ) from None

    def source_dir(self, algo_id: str) -> Path:
        if self.algorithms_root is None:
            raise NotFound(f"No local source for algorithm `{algo_id}`.")
        return self.algorithms_root / algo_id


SHARED_DIR = "_shared"


def source_files(root: Path) -> list[tuple[str, Path]]:
    """``(name in the source dir, file)`` for an algorithm folder, sorted.

    The modules in ``<algorithms>/_shared`` are laid beside the folder's own files (which win
    on a name clash): each algorithm is uploaded alone as a SageMaker source dir, so it must
    carry them, while the repository keeps one copy. ``__pycache__`` is left out.
    """
    entries: dict[str, Path] = {}
    for base in (root.resolve().parent / SHARED_DIR, root):
        if base.is_dir():
            for path in base.rglob("*"):
                rel = path.relative_to(base)
                if path.is_file() and "__pycache__" not in rel.parts:
                    entries[rel.as_posix()] = path
    return sorted(entries.items())


def source_digest(root: Path) -> str | None:
    """sha256 over an algorithm's source dir: names and bytes (None if no folder).

    Publishing names the uploaded source by it; lineage shows it with or without a publish.
    """
    if not root.is_dir():
        return None
    h = hashlib.sha256()
    for name, path in source_files(root):
        h.update(name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()
