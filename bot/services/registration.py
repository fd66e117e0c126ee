"""Teams register their own algorithms: a folder (script mode) or a container image.

Registration is content-addressed and immutable. A version of a registered algorithm is
named by a digest:

* a folder (``add_script``): sha256 over its own files, names and bytes in name order
  (:func:`bot.catalog.files_digest`, as for the presets, but with no ``_shared`` modules);
* an image (``add_image``): the same digest over two entries, ``image`` (the canonical image
  reference, :func:`canonical_image`) and ``manifest.yml`` (the manifest file's bytes).

The same digest again stores nothing new (``created`` False); a new one becomes the id's
current version. Where a folder's files are kept — a local folder or S3 — is the
:class:`AlgorithmShelf` passed in; the store keeps the record.

Only admins and algorithm publishers (``TRAINBOT_ALGORITHM_PUBLISHERS``) may add or remove.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from bot.catalog import SourceFile, files_digest, read_source_folder
from bot.domain import (
    Algorithm,
    AlgorithmSource,
    Conflict,
    InvalidInput,
    NotAllowed,
    NotFound,
)
from bot.services.context import Deps

__all__ = [
    "MANIFEST",
    "RESERVED_IDS",
    "AlgorithmShelf",
    "Shelved",
    "add_image",
    "add_script",
    "canonical_image",
    "remove",
]

MANIFEST = "manifest.yml"
# Words of `trainbot algorithms …` itself: an algorithm of that id couldn't be shown there.
RESERVED_IDS = frozenset({"add", "remove", "publish"})
_FORMAT_HINT = "The format is the presets' (algorithms/README.md, \"Adding an algorithm\")."
# [host[:port]/]path[:tag][@sha256:…] — Docker's reference grammar, lowercase repositories.
_IMAGE = re.compile(
    r"^(?P<name>(?:(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]+)?)/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


@dataclass(frozen=True)
class Shelved:
    """Where a shelf put a source dir, and what runs it there."""

    location: str  # file:///… or s3://…/sourcedir.tar.gz
    images: dict[str, str] = field(default_factory=dict)  # "cpu"/"gpu" → image (SageMaker)
    written: bool = False  # False: it was there already


class AlgorithmShelf(Protocol):
    """Keeps registered source dirs where the compute runs them from."""

    def shelve(self, algorithm: Algorithm, files: Sequence[SourceFile],
               digest: str) -> Shelved:
        """Store ``files`` under ``digest`` unless they are there already (then write
        nothing); say where they are and, for a backend that needs them, the images."""
        ...


def add_script(deps: Deps, folder: Path, *, user: str,
               packer: AlgorithmShelf) -> tuple[Algorithm, bool]:
    """Register the algorithm in ``folder`` (``manifest.yml`` + its entry point) as ``user``;
    ``(the stored algorithm, created)``. Nothing is stored or uploaded unless every check
    passes: who, the files, the manifest, the id, the entry point."""
    deps.policy.check_publish(user, action="add")
    files = read_source_folder(folder)
    where = f"{folder}/{MANIFEST}"
    manifest = next((f for f in files if f.name == MANIFEST), None)
    if manifest is None:
        raise InvalidInput(f"{folder} has no {MANIFEST}.",
                           hint="An algorithm folder holds a manifest.yml beside its training "
                                "script. " + _FORMAT_HINT)
    algorithm = _validated(deps, _parse(manifest.data, where), where)
    if algorithm.entry_point not in {f.name for f in files}:
        raise InvalidInput(
            f"{folder} has no {algorithm.entry_point} (the manifest's entry_point).",
            hint="Name the training script, relative to the folder, in `entry_point`.")
    _check_owner(deps, algorithm.id, user=user, action="add a version of")
    digest = files_digest((f.name, f.data) for f in files)
    shelved = packer.shelve(algorithm, files, digest)
    source = AlgorithmSource(kind="script", digest=digest, location=shelved.location,
                             images=shelved.images, owner=user, registered_at=deps.clock.now())
    return deps.store.register_algorithm(deps.scope, algorithm.model_copy(update={
        "source": source}))


def add_image(deps: Deps, image: str, manifest: Path, *, user: str) -> tuple[Algorithm, bool]:
    """Register a container implementing SageMaker's training contract (bring your own
    container), described by ``manifest``; nothing is uploaded. ``entry_point``,
    ``framework`` and ``framework_version`` may be left out of its manifest: the image is the
    framework and SageMaker runs its ``train``."""
    deps.policy.check_publish(user, action="add")
    reference = canonical_image(image)
    try:
        data = manifest.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"Can't read {manifest}: {exc.strerror or exc}.") from None
    raw = _parse(data, str(manifest))
    for key, default in (("entry_point", "train"), ("framework", "container"),
                         ("framework_version", "-")):
        raw.setdefault(key, default)
    algorithm = _validated(deps, raw, str(manifest))
    _check_owner(deps, algorithm.id, user=user, action="add a version of")
    digest = files_digest([("image", reference.encode()), (MANIFEST, data)])
    source = AlgorithmSource(kind="image", digest=digest, image=reference, owner=user,
                             registered_at=deps.clock.now())
    return deps.store.register_algorithm(deps.scope, algorithm.model_copy(update={
        "source": source}))


def remove(deps: Deps, algo_id: str, *, user: str) -> tuple[Algorithm, bool]:
    """Hide a registered algorithm from new starts; every version stays readable (lineage,
    the versions that ran it). ``(the algorithm, changed)``: False if it was hidden already."""
    deps.policy.check_publish(user, action="remove")
    if algo_id in deps.catalog.algorithms:
        raise InvalidInput(f"`{algo_id}` is a preset algorithm; only registered ones can be "
                           "removed.")
    try:
        current = deps.store.get_registered_algorithm(deps.scope, algo_id)
    except NotFound:
        raise NotFound(f"There is no registered algorithm `{algo_id}`.",
                       hint="`/train algorithms` lists them.") from None
    _check_owner(deps, algo_id, user=user, action="remove", current=current)
    if current.source is not None and current.source.hidden:
        return current, False
    return deps.store.hide_algorithm(deps.scope, algo_id), True


def _check_owner(deps: Deps, algo_id: str, *, user: str, action: str,
                 current: Algorithm | None = None) -> None:
    """An id belongs to whoever registered its current version: only they or an admin may
    add versions of it or remove it (another publisher would otherwise replace a team's
    code under its name)."""
    if current is None:
        try:
            current = deps.store.get_registered_algorithm(deps.scope, algo_id)
        except NotFound:
            return  # a new id: any publisher may take it
    owner = current.source.owner if current.source is not None else None
    if owner is None or owner == user or deps.policy.is_admin(user):
        return
    raise NotAllowed(
        f"`{algo_id}` belongs to <@{owner}>: only they or an admin may {action} it.",
        hint=f"Ask <@{owner}>, or register yours under another `id`.")


def canonical_image(reference: str) -> str:
    """``[host[:port]/]path:tag[@sha256:…]`` with the host in lowercase and the implicit tag
    ``latest`` written out, so two spellings of one reference get one digest. ``InvalidInput``
    for anything that is not an image reference."""
    m = _IMAGE.match(reference.strip())
    host = (m.group("host") or "") if m else ""
    # Docker reads the first part as a registry only with a '.' or a ':', or "localhost";
    # otherwise it is part of the repository path, which is lowercase.
    registry = "." in host or ":" in host or host == "localhost"
    if m is None or (host and not registry and host != host.lower()):
        raise InvalidInput(
            f"`{reference[:200]}` is not a container image reference.",
            hint="Give one like 123456789012.dkr.ecr.us-east-1.amazonaws.com/team-clf:1.0 "
                 "(best pinned by digest: …@sha256:<64 hex>).")
    name = m.group("name")
    if host:
        name = host.lower() + name[len(host):]
    tag = m.group("tag") or (None if m.group("digest") else "latest")
    return name + (f":{tag}" if tag else "") + (f"@{m.group('digest')}" if m.group("digest")
                                                 else "")


def _parse(data: bytes, where: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{where} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where} must be a YAML mapping (id, title, version, …).",
                           hint=_FORMAT_HINT)
    return raw


def _validated(deps: Deps, raw: dict[str, Any], where: str) -> Algorithm:
    """The manifest as an :class:`Algorithm`, or ``InvalidInput`` listing what to fix; its id
    must be free: not a preset's, not a word of the command."""
    if "source" in raw:
        raise InvalidInput(f"{where} may not set `source`: trainbot records where a registered "
                           "algorithm comes from.")
    missing = [k for k in ("metrics", "objective") if not raw.get(k)]
    if missing:
        raise InvalidInput(
            f"{where} needs " + " and ".join(f"`{k}`" for k in missing) + ".",
            hint="trainbot reads each metric from the training log with its regex (one "
                 "capture group) and compares versions by the objective (one of the metrics, "
                 "maximize or minimize). " + _FORMAT_HINT)
    try:
        algorithm = Algorithm.model_validate(raw)
    except ValidationError as exc:
        problems = [_problem(e["loc"], e["msg"]) for e in exc.errors()]
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise InvalidInput(f"{where} is not a valid manifest: " + "; ".join(problems[:5]) + more,
                           hint=_FORMAT_HINT) from None
    if algorithm.id in deps.catalog.algorithms:
        raise Conflict(f"`{algorithm.id}` is the id of a preset algorithm.",
                       hint=f"Pick another `id` in {MANIFEST}, such as `team-{algorithm.id}`.")
    if algorithm.id in RESERVED_IDS:
        raise InvalidInput(f"`{algorithm.id}` is a word of `trainbot algorithms` itself.",
                           hint=f"Pick another `id` in {MANIFEST}.")
    return algorithm


def _problem(loc: tuple[int | str, ...], msg: str) -> str:
    """One pydantic error as a line of the manifest: ``hyperparameters.0.default: …``."""
    msg = msg.removeprefix("Value error, ")
    return f"{'.'.join(str(p) for p in loc)}: {msg}" if loc else msg
