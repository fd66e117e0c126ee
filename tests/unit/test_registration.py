"""Teams register their own algorithms (bot.services.registration): content-addressed,
immutable versions; who may; what is refused; where the source goes (a local folder, or S3 —
moto in-process — with the training images)."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from bot.adapters.algorithm_shelf import LocalAlgorithmShelf, PublishError, S3AlgorithmShelf
from bot.catalog import (
    Catalog,
    SourceFile,
    files_digest,
    load_pools,
    read_source_folder,
    source_digest,
)
from bot.domain import Algorithm, Conflict, InvalidInput, JobSpec, NotAllowed, NotFound
from bot.services import registration
from bot.services.authz import Policy, no_groups
from bot.services.context import Deps
from bot.services.registration import Shelved
from tests.fakes import FakeClock, FakeCompute, MemoryStore, RecordingChat
from tests.unit.conftest import ALGO

ADMIN, PUBLISHER, OTHER = "UADMIN", "UPUB", "UOTHER"
BUCKET, REGION = "team-ml", "us-east-1"
MANIFEST: dict[str, Any] = {
    "id": "team-clf", "title": "Team classifier", "version": "1.0.0",
    "framework": "pytorch", "framework_version": "2.5", "entry_point": "train.py",
    "metrics": [{"name": "validation:accuracy", "regex": "acc=([0-9.]+)"}],
    "objective": {"metric": "validation:accuracy"},
}
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team-clf:1.0"


def make_deps(*, publishers: Sequence[str] = (PUBLISHER,), admins: Sequence[str] = (ADMIN,),
              is_member: Any = None) -> Deps:
    policy = Policy(admins=list(admins), algorithm_publishers=list(publishers),
                    is_member=is_member or no_groups)
    return Deps(store=MemoryStore(), compute=FakeCompute(),
                catalog=Catalog(algorithms={"toy": ALGO}, pools=load_pools()),
                clock=FakeClock(), policy=policy, chat=RecordingChat())


@pytest.fixture
def deps() -> Deps:
    return make_deps()


def write_folder(folder: Path, manifest: dict[str, Any] | None = None) -> Path:
    (folder / "lib").mkdir(parents=True)
    (folder / "manifest.yml").write_text(yaml.safe_dump(manifest or MANIFEST))
    (folder / "train.py").write_text("print('acc=0.9')\n")
    (folder / "lib" / "model.py").write_text("X = 1\n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\x00junk")
    return folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    # A sibling _shared must not be laid beside a team's folder (only presets get it).
    (tmp_path / "_shared").mkdir()
    (tmp_path / "_shared" / "sm_contract.py").write_text("SHARED = True\n")
    return write_folder(tmp_path / "team-clf")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


class RecordingShelf:
    """A shelf in memory that remembers what it was asked to keep."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], str]] = []

    def shelve(self, algorithm: Algorithm, files: Sequence[SourceFile],
               digest: str) -> Shelved:
        self.calls.append((algorithm.id, [f.name for f in files], digest))
        return Shelved(location=f"memory://{digest}", written=True)


def add(deps: Deps, folder: Path, home: Path, user: str = PUBLISHER) -> tuple[Algorithm, bool]:
    return registration.add_script(deps, folder, user=user,
                                   packer=LocalAlgorithmShelf(home / "algorithms"))


def spec_of(algorithm: Algorithm) -> JobSpec:
    assert algorithm.source is not None
    return JobSpec(algorithm=algorithm.id, algorithm_version=algorithm.version,
                   algorithm_digest=algorithm.source.digest, pool="local-cpu")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- local: registering a folder -----------------------------------------------------------------

def test_a_folder_is_registered_with_its_digest_and_listed(deps: Deps, folder: Path,
                                                           home: Path) -> None:
    algorithm, created = add(deps, folder, home)

    assert created
    source = algorithm.source
    assert source is not None and source.kind == "script" and source.owner == PUBLISHER
    assert source.digest == source_digest(folder, shared=False)
    assert source.registered_at == deps.clock.now() and source.image is None
    assert [a.id for a in deps.algorithms.all()] == ["toy", "team-clf"]
    assert deps.algorithms.get("team-clf") == algorithm


def test_the_folder_is_copied_privately_under_the_home(deps: Deps, folder: Path,
                                                       home: Path) -> None:
    algorithm, _ = add(deps, folder, home)

    assert algorithm.source is not None
    digest = algorithm.source.digest
    copy = home / "algorithms" / "team-clf" / digest
    assert algorithm.source.location == copy.as_uri()
    files = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())
    assert files == ["lib/model.py", "manifest.yml", "train.py"]  # no _shared, no __pycache__
    assert (copy / "train.py").read_bytes() == (folder / "train.py").read_bytes()
    assert {mode(p) for p in copy.rglob("*") if p.is_file()} == {0o600}
    dirs = [home / "algorithms", copy.parent, copy, copy / "lib"]
    assert {mode(d) for d in dirs} == {0o700}
    assert source_digest(copy, shared=False) == digest
    assert [p.name for p in copy.parent.iterdir()] == [digest]  # no staging folder left


def test_the_same_folder_again_is_unchanged(deps: Deps, folder: Path, home: Path) -> None:
    first, _ = add(deps, folder, home)
    deps.clock.advance(minutes=5)  # type: ignore[attr-defined]

    again, created = add(deps, folder, home, user=ADMIN)

    assert not created and again == first  # the first registration, owner and time included
    assert len(deps.store.list_registered_algorithms(deps.scope)) == 1


def test_the_local_shelf_writes_nothing_for_a_digest_it_has(folder: Path, home: Path) -> None:
    shelf = LocalAlgorithmShelf(home / "algorithms")
    files = read_source_folder(folder)
    algorithm = Algorithm.model_validate(MANIFEST)
    digest = files_digest((f.name, f.data) for f in files)

    assert shelf.shelve(algorithm, files, digest).written
    kept = shelf.shelve(algorithm, files, digest)

    assert not kept.written and kept.location.endswith(digest)


def test_an_edited_file_is_a_new_current_version(deps: Deps, folder: Path, home: Path) -> None:
    first, _ = add(deps, folder, home)
    (folder / "train.py").write_text("print('acc=0.95')\n")

    second, created = add(deps, folder, home)

    assert created and first.source and second.source
    assert second.source.digest != first.source.digest
    assert deps.algorithms.get("team-clf") == second
    assert deps.algorithms.for_spec(spec_of(first)) == first  # the old version stays readable


# -- removing ------------------------------------------------------------------------------------

def test_remove_hides_from_new_starts_and_keeps_history(deps: Deps, folder: Path,
                                                        home: Path) -> None:
    algorithm, _ = add(deps, folder, home)

    hidden, changed = registration.remove(deps, "team-clf", user=ADMIN)

    assert changed and hidden.source is not None and hidden.source.hidden
    with pytest.raises(NotFound):
        deps.algorithms.get("team-clf")
    assert [a.id for a in deps.algorithms.all()] == ["toy"]
    assert deps.algorithms.for_spec(spec_of(algorithm)).id == "team-clf"
    assert registration.remove(deps, "team-clf", user=ADMIN)[1] is False


def test_adding_a_removed_algorithm_again_shows_it(deps: Deps, folder: Path, home: Path) -> None:
    add(deps, folder, home)
    registration.remove(deps, "team-clf", user=PUBLISHER)

    add(deps, folder, home)

    assert deps.algorithms.get("team-clf").id == "team-clf"


def test_remove_of_an_unknown_or_preset_id_is_refused(deps: Deps) -> None:
    with pytest.raises(NotFound, match="no registered algorithm `nope`"):
        registration.remove(deps, "nope", user=ADMIN)
    with pytest.raises(InvalidInput, match="preset"):
        registration.remove(deps, "toy", user=ADMIN)


# -- who may -------------------------------------------------------------------------------------

@pytest.mark.parametrize("user", [PUBLISHER, ADMIN])
def test_publishers_and_admins_may_add_and_remove(folder: Path, home: Path, user: str) -> None:
    deps = make_deps()
    assert add(deps, folder, home, user=user)[1]
    assert registration.remove(deps, "team-clf", user=user)[1]


def test_anyone_else_is_refused_and_told_whom_to_ask(deps: Deps, folder: Path,
                                                     home: Path) -> None:
    shelf = RecordingShelf()
    with pytest.raises(NotAllowed) as refused:
        registration.add_script(deps, folder, user=OTHER, packer=shelf)

    assert refused.value.message == ("Only admins or algorithm publishers may add algorithms. "
                                     f"Ask one of: <@{PUBLISHER}>, <@{ADMIN}>.")
    assert shelf.calls == [] and deps.store.list_registered_algorithms(deps.scope) == []
    add(deps, folder, home)
    with pytest.raises(NotAllowed, match="may remove algorithms"):
        registration.remove(deps, "team-clf", user=OTHER)


def test_with_no_publishers_and_no_admins_the_refusal_says_what_to_set(folder: Path) -> None:
    deps = make_deps(publishers=(), admins=())
    with pytest.raises(NotAllowed) as refused:
        registration.add_script(deps, folder, user=OTHER, packer=RecordingShelf())
    assert "there are none" in refused.value.message
    assert "TRAINBOT_ALGORITHM_PUBLISHERS" in (refused.value.hint or "")


def test_a_member_of_a_publisher_group_may_add(folder: Path, home: Path) -> None:
    deps = make_deps(publishers=("S0MLTEAM",),
                     is_member=lambda user, group: (user, group) == (OTHER, "S0MLTEAM"))
    assert deps.policy.can_publish(OTHER) and not deps.policy.can_publish("USTRANGER")
    assert add(deps, folder, home, user=OTHER)[1]


# -- what is refused -----------------------------------------------------------------------------

def refused(deps: Deps, folder: Path, match: str, error: type[Exception] = InvalidInput) -> None:
    shelf = RecordingShelf()
    with pytest.raises(error, match=match):
        registration.add_script(deps, folder, user=PUBLISHER, packer=shelf)
    assert shelf.calls == [] and deps.store.list_registered_algorithms(deps.scope) == []


def test_a_preset_id_is_refused(deps: Deps, tmp_path: Path) -> None:
    refused(deps, write_folder(tmp_path / "f", MANIFEST | {"id": "toy"}),
            "`toy` is the id of a preset algorithm", Conflict)


def test_a_word_of_the_command_is_refused_as_id(deps: Deps, tmp_path: Path) -> None:
    refused(deps, write_folder(tmp_path / "f", MANIFEST | {"id": "remove"}), "a word of")


@pytest.mark.parametrize(("text", "match"), [
    ("id: [unclosed", "is not valid YAML"),
    ("- just\n- a list\n", "must be a YAML mapping"),
    (yaml.safe_dump({k: v for k, v in MANIFEST.items() if k != "metrics"}), "needs `metrics`"),
    (yaml.safe_dump({k: v for k, v in MANIFEST.items() if k != "objective"}),
     "needs `objective`"),
    (yaml.safe_dump(MANIFEST | {"objective": {"metric": "loss"}}),
     "not a valid manifest: objective metric 'loss' is not among"),
    (yaml.safe_dump(MANIFEST | {"version": "one"}), r"not a valid manifest: version: String"),
    (yaml.safe_dump(MANIFEST | {"source": {"kind": "image"}}), "may not set `source`"),
])
def test_a_bad_manifest_is_refused_saying_what_is_wrong(deps: Deps, folder: Path, text: str,
                                                        match: str) -> None:
    (folder / "manifest.yml").write_text(text)
    refused(deps, folder, match)


def test_a_folder_without_a_manifest_is_refused(deps: Deps, folder: Path) -> None:
    (folder / "manifest.yml").unlink()
    refused(deps, folder, "has no manifest.yml")


def test_a_missing_entry_point_is_refused(deps: Deps, folder: Path) -> None:
    (folder / "train.py").unlink()
    refused(deps, folder, r"has no train.py \(the manifest's entry_point\)")


def test_a_missing_folder_is_refused(deps: Deps, tmp_path: Path) -> None:
    refused(deps, tmp_path / "nowhere", "is not a folder")


def test_a_symlink_pointing_outside_the_folder_is_refused(deps: Deps, folder: Path,
                                                          tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("token")
    (folder / "config.txt").symlink_to(tmp_path / "secret.txt")
    refused(deps, folder, "config.txt .* is a symlink to .*secret.txt, outside the folder")


@pytest.mark.parametrize(("target", "match"), [("lib", "to a folder"),
                                               ("missing.py", "doesn't exist")])
def test_a_symlinked_folder_or_a_broken_symlink_is_refused(deps: Deps, folder: Path,
                                                           target: str, match: str) -> None:
    (folder / "link").symlink_to(folder / target)
    refused(deps, folder, match)


def test_a_symlink_to_a_file_inside_is_registered_as_that_file(deps: Deps, folder: Path,
                                                               home: Path) -> None:
    (folder / "model.py").symlink_to("lib/model.py")
    algorithm, _ = add(deps, folder, home)
    assert algorithm.source is not None
    copy = Path(algorithm.source.location.removeprefix("file://"))  # type: ignore[union-attr]
    assert not (copy / "model.py").is_symlink()
    assert (copy / "model.py").read_text() == "X = 1\n"


def test_a_fifo_is_refused(deps: Deps, folder: Path) -> None:
    os.mkfifo(folder / "pipe")
    refused(deps, folder, "pipe .* is not a regular file")


def test_a_folder_over_the_size_limit_is_refused(folder: Path) -> None:
    (folder / "weights.bin").write_bytes(b"\x00" * 2048)
    with pytest.raises(InvalidInput, match=r"holds 0\.0 MB of files; .* may hold 0\.0 MB") as e:
        read_source_folder(folder, max_bytes=1024)
    assert "--data" in (e.value.hint or "")
    assert len(read_source_folder(folder, max_bytes=4096)) == 4


def test_the_default_limit_is_50_mb(deps: Deps, folder: Path) -> None:
    with (folder / "weights.bin").open("wb") as f:
        f.truncate(50 * 1024 * 1024 + 1)  # sparse: costs no disk
    refused(deps, folder, "holds 50.0 MB of files; an algorithm's source may hold 50.0 MB")


# -- images (bring your own container) -----------------------------------------------------------

@pytest.fixture
def manifest_file(tmp_path: Path) -> Path:
    path = tmp_path / "byoc.yml"
    manifest = {k: v for k, v in MANIFEST.items()
                if k not in ("entry_point", "framework", "framework_version")}
    path.write_text(yaml.safe_dump(manifest))
    return path


def test_an_image_is_registered_with_the_digest_of_its_reference_and_manifest(
        deps: Deps, manifest_file: Path) -> None:
    algorithm, created = registration.add_image(deps, IMAGE, manifest_file, user=PUBLISHER)

    source = algorithm.source
    assert created and source is not None
    assert (source.kind, source.image, source.location, source.images) == (
        "image", IMAGE, None, {})
    assert source.digest == files_digest([("image", IMAGE.encode()),
                                          ("manifest.yml", manifest_file.read_bytes())])
    assert algorithm.entry_point == "train"  # SageMaker runs the image's `train`
    assert registration.add_image(deps, f" {IMAGE} ", manifest_file, user=ADMIN) == (
        algorithm, False)
    other, created = registration.add_image(deps, IMAGE + "-b", manifest_file, user=ADMIN)
    assert created and other.source and other.source.digest != source.digest


def test_an_image_needs_a_readable_manifest_and_a_reference(deps: Deps, tmp_path: Path,
                                                            manifest_file: Path) -> None:
    with pytest.raises(InvalidInput, match="Can't read"):
        registration.add_image(deps, IMAGE, tmp_path / "none.yml", user=ADMIN)
    with pytest.raises(InvalidInput, match="not a container image reference"):
        registration.add_image(deps, "Not An Image!", manifest_file, user=ADMIN)
    with pytest.raises(NotAllowed):
        registration.add_image(deps, IMAGE, manifest_file, user=OTHER)


@pytest.mark.parametrize(("given", "canonical"), [
    ("team-clf", "team-clf:latest"),
    ("Registry.Example.com:5000/ml/team-clf:v1", "registry.example.com:5000/ml/team-clf:v1"),
    (f"{IMAGE}@sha256:{'a' * 64}", f"{IMAGE}@sha256:{'a' * 64}"),
    (f"team/clf@sha256:{'b' * 64}", f"team/clf@sha256:{'b' * 64}"),
])
def test_image_references_are_made_canonical(given: str, canonical: str) -> None:
    assert registration.canonical_image(given) == canonical


@pytest.mark.parametrize("bad", ["", "UPPER/case:1", "a:b:c", "x@sha256:short", "has space:1"])
def test_malformed_image_references_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        registration.canonical_image(bad)


# -- AWS: the S3 shelf (moto) --------------------------------------------------------------------

@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


def puts(client: Any) -> list[str]:
    """The keys of every PutObject the client sends from now on."""
    keys: list[str] = []
    client.meta.events.register(
        "before-call.s3.PutObject",
        lambda params, **_: keys.append(params["url_path"].removeprefix("/")))
    return keys


def resolver(algorithm: Algorithm, region: str, instance_type: str) -> str:
    kind = "gpu" if instance_type.startswith("ml.g") else "cpu"
    return f"763104351884.dkr.ecr.{region}.amazonaws.com/pytorch-training:2.5-{kind}-py311"


def s3_shelf(client: Any, resolve: Any = resolver) -> S3AlgorithmShelf:
    return S3AlgorithmShelf(bucket=BUCKET, region=REGION, resolve_image=resolve, client=client)


def test_aws_add_uploads_the_source_once_with_the_images(deps: Deps, folder: Path,
                                                         s3: Any) -> None:
    uploaded = puts(s3)
    algorithm, created = registration.add_script(deps, folder, user=PUBLISHER,
                                                 packer=s3_shelf(s3))
    source = algorithm.source
    assert created and source is not None
    key = f"trainbot/algorithms/team-clf/1.0.0/{source.digest[:16]}/sourcedir.tar.gz"
    assert uploaded == [key] and source.location == f"s3://{BUCKET}/{key}"
    assert source.images == {"cpu": resolver(algorithm, REGION, "ml.m5.xlarge"),
                             "gpu": resolver(algorithm, REGION, "ml.g5.xlarge")}
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(body))) as tar:
        assert tar.getnames() == ["lib/model.py", "manifest.yml", "train.py"]  # no _shared

    again, created = registration.add_script(deps, folder, user=PUBLISHER,
                                             packer=s3_shelf(s3))

    assert not created and again == algorithm and uploaded == [key]  # no second PutObject


def test_aws_a_new_digest_is_a_new_key(deps: Deps, folder: Path, s3: Any) -> None:
    first, _ = registration.add_script(deps, folder, user=PUBLISHER, packer=s3_shelf(s3))
    (folder / "train.py").write_text("print('acc=0.99')\n")
    uploaded = puts(s3)

    second, created = registration.add_script(deps, folder, user=PUBLISHER, packer=s3_shelf(s3))

    assert created and second.source and first.source
    assert uploaded == [second.source.location.removeprefix(f"s3://{BUCKET}/")]  # type: ignore[union-attr]
    assert second.source.location != first.source.location


def test_aws_without_any_training_image_nothing_is_uploaded(deps: Deps, folder: Path,
                                                            s3: Any) -> None:
    def none(algorithm: Algorithm, region: str, instance_type: str) -> str:
        raise ValueError("Unsupported framework")

    uploaded = puts(s3)
    with pytest.raises(PublishError, match="No training image for team-clf"):
        registration.add_script(deps, folder, user=PUBLISHER, packer=s3_shelf(s3, none))
    assert uploaded == [] and deps.store.list_registered_algorithms(deps.scope) == []


def test_aws_an_image_algorithm_uploads_nothing(deps: Deps, manifest_file: Path,
                                                s3: Any) -> None:
    uploaded = puts(s3)
    algorithm, _ = registration.add_image(deps, IMAGE, manifest_file, user=PUBLISHER)
    assert algorithm.source is not None and algorithm.source.image == IMAGE
    assert uploaded == [] and s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_another_publisher_may_neither_replace_nor_remove_someone_elses_id(
        folder: Path, home: Path) -> None:
    deps = make_deps(publishers=(PUBLISHER, "UPUB2"))
    add(deps, folder, home, user=PUBLISHER)
    (folder / "train.py").write_text("print('someone else')\n")
    with pytest.raises(NotAllowed, match="belongs to <@UPUB>"):
        add(deps, folder, home, user="UPUB2")
    with pytest.raises(NotAllowed, match="belongs to <@UPUB>"):
        registration.remove(deps, "team-clf", user="UPUB2")
    assert deps.algorithms.get("team-clf").source.owner == PUBLISHER  # type: ignore[union-attr]
    # The owner and an admin may.
    assert add(deps, folder, home, user=ADMIN)[1] is True
