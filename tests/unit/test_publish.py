"""Publishing the preset algorithms: deterministic tarballs, no-op republish, the catalog.

S3 is moto in-process (no sockets); the image resolver is a fake, so the sagemaker SDK is
needed only by the one test that checks the real resolver.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from bot import publish as publishing
from bot.adapters.algorithm_catalog import PublishedCatalog
from bot.catalog import load_algorithms
from bot.catalog import source_digest as lineage_digest
from bot.domain import Algorithm, ConfigError, InvalidInput

BUCKET = "team-ml"
REGION = "us-east-1"
MANIFEST = {
    "id": "toy", "title": "Toy", "version": "1.2.0", "framework": "pytorch",
    "framework_version": "2.5", "py_version": "py311", "entry_point": "train.py",
    "metrics": [{"name": "acc", "regex": "acc=([0-9.]+)"}],
    "objective": {"metric": "acc"},
}


def fake_resolver(calls: list[tuple[str, str, str]] | None = None) -> publishing.ImageResolver:
    def resolve(algorithm: Algorithm, region: str, instance_type: str) -> str:
        if calls is not None:
            calls.append((algorithm.id, region, instance_type))
        kind = "gpu" if instance_type.startswith("ml.g") else "cpu"
        return (f"763104351884.dkr.ecr.{region}.amazonaws.com/pytorch-training:"
                f"{algorithm.framework_version}-{kind}-{algorithm.py_version}")
    return resolve


@pytest.fixture
def algorithms_dir(tmp_path: Path) -> Path:
    root = tmp_path / "algorithms"
    folder = root / "toy"
    (folder / "lib").mkdir(parents=True)
    (folder / "manifest.yml").write_text(yaml.safe_dump(MANIFEST))
    (folder / "train.py").write_text("print('acc=1.0')\n")
    (folder / "lib" / "model.py").write_text("X = 1\n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\x00junk")
    return root


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


def count_puts(client: Any) -> list[str]:
    """The keys of every PutObject the client sends from now on (``params`` is the serialized
    request there, so the key is the virtual-host style URL path)."""
    keys: list[str] = []
    client.meta.events.register(
        "before-call.s3.PutObject",
        lambda params, **_: keys.append(params["url_path"].removeprefix("/")))
    return keys


def run_publish(root: Path, s3: Any, **kw: Any) -> publishing.PublishResult:
    return publishing.publish(load_algorithms(root), root, bucket=BUCKET, region=REGION,
                              resolve_image=fake_resolver(), s3_client=s3, **kw)


# -- the tarball ----------------------------------------------------------------------------------

def test_sourcedir_is_deterministic(algorithms_dir: Path) -> None:
    folder = algorithms_dir / "toy"
    first = publishing.build_sourcedir(folder)
    time.sleep(0.01)
    os.utime(folder / "train.py")  # a new mtime must not change the bytes
    assert publishing.build_sourcedir(folder) == first
    assert publishing.source_digest(folder) == publishing.source_digest(folder)


def test_sourcedir_layout(algorithms_dir: Path) -> None:
    data = publishing.build_sourcedir(algorithms_dir / "toy")
    assert gzip.decompress(data)  # plain gzip, header mtime 0
    assert data[4:8] == b"\x00\x00\x00\x00"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["lib/model.py", "manifest.yml", "train.py"]
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {
            (publishing.FIXED_MTIME, 0, 0, "", "")}
        handle = tar.extractfile("train.py")
        assert handle is not None and handle.read() == b"print('acc=1.0')\n"


def test_digest_follows_content_and_matches_lineage(algorithms_dir: Path) -> None:
    folder = algorithms_dir / "toy"
    before = publishing.source_digest(folder)
    assert before == lineage_digest(folder)
    (folder / "train.py").write_text("print('acc=0.5')\n")
    assert publishing.source_digest(folder) != before
    (folder / "__pycache__" / "other.pyc").write_bytes(b"ignored")
    assert publishing.source_digest(folder) == lineage_digest(folder)


# -- publishing --------------------------------------------------------------------------------------

def test_publish_uploads_source_and_catalog(algorithms_dir: Path, s3: Any) -> None:
    result = run_publish(algorithms_dir, s3)
    entry = result.catalog.entry("toy")
    digest = publishing.source_digest(algorithms_dir / "toy")
    key = f"trainbot/algorithms/toy/1.2.0/{digest[:16]}/sourcedir.tar.gz"
    assert entry.source_uri == f"s3://{BUCKET}/{key}"
    assert entry.digest == digest and entry.version == "1.2.0" and entry.entry_point == "train.py"
    assert entry.images.cpu and entry.images.cpu.endswith("2.5-cpu-py311")
    assert entry.images.gpu and entry.images.gpu.endswith("2.5-gpu-py311")
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == publishing.build_sourcedir(
        algorithms_dir / "toy")
    stored = s3.get_object(Bucket=BUCKET, Key="trainbot/catalog.json")["Body"].read()
    assert PublishedCatalog.parse(stored) == result.catalog
    assert (result.uploaded, result.catalog_written) == (["toy"], True)


def test_republishing_unchanged_code_puts_nothing(algorithms_dir: Path, s3: Any) -> None:
    run_publish(algorithms_dir, s3)
    puts = count_puts(s3)
    result = run_publish(algorithms_dir, s3)
    assert puts == []
    assert (result.unchanged, result.uploaded, result.catalog_written) == (["toy"], [], False)


def test_changed_code_uploads_a_new_key(algorithms_dir: Path, s3: Any) -> None:
    first = run_publish(algorithms_dir, s3).catalog.entry("toy")
    (algorithms_dir / "toy" / "train.py").write_text("print('acc=0.9')\n")
    puts = count_puts(s3)
    second = run_publish(algorithms_dir, s3).catalog.entry("toy")
    assert second.source_uri != first.source_uri
    assert puts == [second.source_uri.removeprefix(f"s3://{BUCKET}/"), "trainbot/catalog.json"]


def test_dry_run_touches_no_s3(algorithms_dir: Path) -> None:
    result = run_publish(algorithms_dir, None, dry_run=True)  # no client at all
    assert result.uploaded == ["toy"] and not result.catalog_written
    assert result.catalog.entry("toy").images.gpu


def test_images_are_resolved_for_a_cpu_and_a_gpu_instance(algorithms_dir: Path, s3: Any) -> None:
    calls: list[tuple[str, str, str]] = []
    publishing.publish(load_algorithms(algorithms_dir), algorithms_dir, bucket=BUCKET,
                       region="eu-west-1", resolve_image=fake_resolver(calls), s3_client=s3)
    assert calls == [("toy", "eu-west-1", "ml.m5.xlarge"), ("toy", "eu-west-1", "ml.g5.xlarge")]


def test_a_framework_without_gpu_images_publishes_cpu_only(algorithms_dir: Path, s3: Any) -> None:
    def cpu_only(algorithm: Algorithm, region: str, instance_type: str) -> str:
        if instance_type.startswith("ml.g"):
            raise ValueError("Unsupported processor: gpu.")
        return "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1"

    result = publishing.publish(load_algorithms(algorithms_dir), algorithms_dir, bucket=BUCKET,
                                region=REGION, resolve_image=cpu_only, s3_client=s3)
    images = result.catalog.entry("toy").images
    assert images.gpu is None and images.cpu
    assert result.catalog.entry("toy").image_for(gpu=True) == images.cpu


# -- the command -------------------------------------------------------------------------------------

def test_main_writes_the_catalog_file(algorithms_dir: Path, s3: Any, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "catalog.json"
    argv = ["--bucket", BUCKET, "--region", REGION, "--out", str(out),
            "--algorithms-dir", str(algorithms_dir)]
    assert publishing.main(argv, resolve_image=fake_resolver(), s3_client=s3) == 0
    from_file = PublishedCatalog.load(out)
    assert from_file == PublishedCatalog.load(f"s3://{BUCKET}/trainbot/catalog.json",
                                              s3_client=s3)
    text = capsys.readouterr().out
    assert "toy 1.2.0 sha256:" in text and "uploaded" in text and "written" in text
    assert publishing.main(argv, resolve_image=fake_resolver(), s3_client=s3) == 0
    assert "unchanged" in capsys.readouterr().out


def test_main_dry_run_prints_the_catalog(algorithms_dir: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "catalog.json"
    argv = ["--bucket", BUCKET, "--region", REGION, "--dry-run", "--out", str(out),
            "--algorithms-dir", str(algorithms_dir)]
    assert publishing.main(argv, resolve_image=fake_resolver()) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{"):])["algorithms"]["toy"]["version"] == "1.2.0"
    assert not out.exists()


def test_a_cpu_image_alone_says_gpu_pools_will_run_it(
    algorithms_dir: Path, s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cpu = "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:cpu"
    argv = ["--bucket", BUCKET, "--region", REGION, "--out", str(tmp_path / "c.json"),
            "--algorithms-dir", str(algorithms_dir), "--cpu-image", cpu]
    assert publishing.main(argv, s3_client=s3) == 0
    err = capsys.readouterr().err
    assert "GPU pools will run the --cpu-image" in err and "--gpu-image" in err
    assert publishing.main([*argv, "--gpu-image", cpu + "-gpu"], s3_client=s3) == 0
    assert "GPU pools" not in capsys.readouterr().err


def test_a_gpu_image_alone_is_refused(algorithms_dir: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--bucket", BUCKET, "--region", REGION, "--algorithms-dir", str(algorithms_dir),
            "--gpu-image", "x/train:gpu", "--dry-run"]
    assert publishing.main(argv) == 2
    assert "--gpu-image goes with --cpu-image" in capsys.readouterr().err


def test_main_needs_a_bucket(algorithms_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--region", REGION, "--algorithms-dir", str(algorithms_dir)]
    assert publishing.main(argv, resolve_image=fake_resolver()) == 2
    assert "--bucket" in capsys.readouterr().err


def test_without_the_sdk_main_says_how_to_install_it(
    algorithms_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_sagemaker(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "sagemaker" or name.startswith("sagemaker."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sagemaker)
    argv = ["--bucket", BUCKET, "--region", REGION, "--dry-run",
            "--algorithms-dir", str(algorithms_dir)]
    assert publishing.main(argv) == 2
    assert "pip install -e '.[publish]'" in capsys.readouterr().err


def test_the_sdk_resolver_finds_pytorch_images() -> None:
    pytest.importorskip("sagemaker.core")
    algorithm = Algorithm.model_validate(MANIFEST)
    resolve = publishing.sdk_image_resolver()
    assert "pytorch-training" in resolve(algorithm, REGION, "ml.g5.xlarge")
    assert "cpu" in resolve(algorithm, REGION, "ml.m5.xlarge")


# -- `trainbot algorithms add`: which shelf, which options -------------------------------------------

def shelf(settings: Any, **options: Any) -> Any:
    given = {"path": None, "image": None, "manifest": None, "cpu_image": None,
             "gpu_image": None} | options
    return publishing.shelf_for(settings, **given)


def test_add_keeps_a_folder_under_the_home_locally(tmp_path: Path) -> None:
    from bot.adapters.algorithm_shelf import LocalAlgorithmShelf
    from bot.config import Settings

    settings = Settings(home=tmp_path / "home")
    assert isinstance(shelf(settings, path=tmp_path), LocalAlgorithmShelf)
    assert shelf(settings, image="x:1", manifest="m.yml") is None
    with pytest.raises(InvalidInput, match="--cpu-image and --gpu-image choose"):
        shelf(settings, path=tmp_path, cpu_image="x:1")


def test_add_uploads_to_the_bucket_on_sagemaker(tmp_path: Path, s3: Any,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from bot.adapters.algorithm_shelf import S3AlgorithmShelf
    from bot.config import Settings

    settings = Settings(home=tmp_path / "home", compute="sagemaker", bucket=BUCKET)
    assert isinstance(shelf(settings, path=tmp_path, cpu_image="x:cpu"), S3AlgorithmShelf)
    assert "GPU pools will run the --cpu-image too" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="TRAINBOT_BUCKET is required"):
        shelf(Settings(home=tmp_path, compute="sagemaker"), path=tmp_path, cpu_image="x:cpu")


@pytest.mark.parametrize(("options", "error"), [
    ({}, "Give the algorithm's folder"),
    ({"image": "x:1"}, "--image goes with --manifest FILE alone"),
    ({"image": "x:1", "manifest": "m.yml", "path": Path(".")}, "--image goes with --manifest"),
    ({"path": Path("."), "manifest": "m.yml"}, "Give the algorithm's folder"),
    ({"path": Path("."), "gpu_image": "x:gpu"}, "--gpu-image goes with --cpu-image"),
])
def test_add_options_that_do_not_go_together_are_refused(
        tmp_path: Path, options: dict[str, Any], error: str) -> None:
    from bot.config import Settings

    with pytest.raises(InvalidInput, match=error):
        shelf(Settings(home=tmp_path), **options)
