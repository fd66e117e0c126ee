"""Loading the preset algorithm manifests and the resource pools from files, and reading an
algorithm's source dir (its files, their digest, the checks a team's own folder passes)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.domain import Algorithm, ConfigError, InvalidInput, NotFound, ResourcePool
from bot.domain.cost import Budget, BudgetScope

__all__ = [
    "MAX_SOURCE_BYTES",
    "Catalog",
    "SourceFile",
    "files_digest",
    "load_algorithms",
    "load_manifest",
    "load_pools",
    "read_source",
    "read_source_folder",
    "source_digest",
    "source_files",
]

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


def load_budgets(path: Path) -> list[Budget]:
    """Budgets from a YAML file (``TRAINBOT_BUDGETS``)::

        budgets:
          - channel: C0123ABCD      # or user: U0123ABCD
            limit_usd: 500
            policy: approve         # over it: an approver's OK (default), or refuse
    """
    try:
        raw = yaml.load(path.read_text(), Loader=_Loader) or {}
        out = []
        for entry in raw.get("budgets") or []:
            entry = dict(entry)
            scope = "channel" if "channel" in entry else "user"
            subject = entry.pop(scope)
            out.append(Budget(scope=BudgetScope(scope), subject=str(subject),
                              source="config", **entry))
    except (OSError, KeyError, TypeError, AttributeError, ValueError, ValidationError,
            yaml.YAMLError) as exc:
        raise ConfigError(f"TRAINBOT_BUDGETS: cannot load budgets from {path}: {exc}") from exc
    keys = [b.key for b in out]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"TRAINBOT_BUDGETS: {path} gives a channel or user two budgets")
    return out


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
# Left out of every source dir: caches and version control, never part of the algorithm.
_SKIPPED_DIRS = frozenset({"__pycache__", ".git"})
# A registered algorithm's source dir, all files together (SageMaker downloads and unpacks
# it before every training job; keep data out of it).
MAX_SOURCE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class SourceFile:
    """One file of an algorithm's source dir, read once: what is digested is what is stored."""

    name: str  # its path in the source dir, with '/'
    data: bytes
    executable: bool = False


def source_files(root: Path, *, shared: bool = True) -> list[tuple[str, Path]]:
    """``(name in the source dir, file)`` for an algorithm folder, sorted.

    ``shared`` (the presets): the modules in ``<algorithms>/_shared`` are laid beside the
    folder's own files (which win on a name clash): each algorithm is uploaded alone as a
    SageMaker source dir, so it must carry them, while the repository keeps one copy. A team's
    own folder (``shared=False``) is exactly its own files. ``__pycache__`` and ``.git`` are
    left out; a symlinked folder is not followed (:func:`read_source_folder` refuses one).
    """
    entries: dict[str, Path] = {}
    bases = (root.resolve().parent / SHARED_DIR, root) if shared else (root,)
    for base in bases:
        if base.is_dir():
            for path in base.rglob("*"):
                rel = path.relative_to(base)
                if path.is_file() and _SKIPPED_DIRS.isdisjoint(rel.parts):
                    entries[rel.as_posix()] = path
    return sorted(entries.items())


def files_digest(files: Iterable[tuple[str, bytes]]) -> str:
    """sha256 over ``(name, bytes)`` pairs in the order given (sorted by name for a folder)."""
    h = hashlib.sha256()
    for name, data in files:
        h.update(name.encode())
        h.update(data)
    return h.hexdigest()


def source_digest(root: Path, *, shared: bool = True) -> str | None:
    """sha256 over an algorithm's source dir: names and bytes (None if no folder).

    Publishing names the uploaded source by it; lineage shows it with or without a publish;
    registration identifies a team's algorithm version by it (``shared=False``).
    """
    if not root.is_dir():
        return None
    return files_digest((name, path.read_bytes()) for name, path in source_files(root,
                                                                                 shared=shared))


def read_source(root: Path, *, shared: bool = True) -> list[SourceFile]:
    """The files of :func:`source_files`, read: ``files_digest`` of them is
    :func:`source_digest`."""
    return [SourceFile(name, path.read_bytes(), os.access(path, os.X_OK))
            for name, path in source_files(root, shared=shared)]


def read_source_folder(folder: Path, *, max_bytes: int = MAX_SOURCE_BYTES) -> list[SourceFile]:
    """A team's algorithm folder, checked and read: its own files only (no ``_shared``).

    ``InvalidInput`` saying what to change for a folder that is missing or empty, a symlink
    that points outside it (or nowhere, or to a folder), something that is not a regular file
    (a FIFO would hang the read), or more than ``max_bytes`` in all.
    """
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder.",
                           hint="Give the folder that holds manifest.yml and the training script.")
    root = folder.resolve()
    total = 0
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not _SKIPPED_DIRS.isdisjoint(rel.parts):
            continue
        if path.is_symlink():
            _check_link(root, rel, path)
        elif not (path.is_dir() or path.is_file()):
            raise InvalidInput(f"{rel} in {root} is not a regular file.",
                               hint="Remove it: a source dir holds files and folders only.")
        if path.is_file():
            total += path.stat().st_size
    if total > max_bytes:
        raise InvalidInput(
            f"{root} holds {_mb(total)} of files; an algorithm's source may hold {_mb(max_bytes)}.",
            hint="Keep data and model weights out of it: pass data with --data, and let the "
                 "script download or build what it needs.")
    files = read_source(root, shared=False)
    if not files:
        raise InvalidInput(f"{root} has no files.")
    return files


def _check_link(root: Path, rel: Path, path: Path) -> None:
    target = path.resolve()
    where = f"{rel} in {root} is a symlink"
    if not target.is_relative_to(root):
        raise InvalidInput(f"{where} to {target}, outside the folder.",
                           hint="Copy the file into the folder instead: only the folder's own "
                                "files are registered.")
    if not target.exists():
        raise InvalidInput(f"{where} to {target}, which doesn't exist.")
    if target.is_dir():
        raise InvalidInput(f"{where} to a folder; symlinked folders are not followed.",
                           hint="Replace it by the folder itself.")


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def load_manifest(path: Path) -> dict[str, Any]:
    """A ``manifest.yml`` as data (not yet validated); ``InvalidInput`` if it can't be read as
    a YAML mapping."""
    try:
        raw = yaml.load(path.read_bytes(), Loader=_Loader)
    except FileNotFoundError:
        raise InvalidInput(f"There is no {path}.",
                           hint="An algorithm folder holds a manifest.yml (see "
                                "algorithms/README.md for its format).") from None
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{path} can't be read as YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidInput(f"{path} must be a YAML mapping (id, title, version, …).")
    return raw
