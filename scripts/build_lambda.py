"""Build the Lambda bundle ``build/lambda/trainbot.zip`` that ``serverless.yml`` deploys.

The zip holds what the three functions run and nothing else: ``bot`` (less the local Slack
stand-in and the publish-time code), ``functions``, the algorithms' manifests and sources
(the catalog, and the digest lineage shows), and at its root the packages of
``requirements-lambda.txt`` installed as wheels for the Lambda runtime (python3.12,
manylinux x86_64) whatever Python runs this. boto3 and its dependencies are left out: the
runtime has them. Nothing heavy (torch, tensorboard, the sagemaker SDK, matplotlib).

Why a pre-built artifact rather than serverless' own packaging plus a layer: with a layer,
``osls package`` asks CloudFormation for the last layer's hash, so it can't package offline;
with ``package.artifact`` it needs no network and no credentials.

The packages are cached in ``build/lambda-deps`` (rebuilt when requirements-lambda.txt or
this script changes), and the zip is byte-for-byte reproducible (sorted entries, fixed
times), so an unchanged bundle has an unchanged hash and isn't uploaded again.

    usage: python scripts/build_lambda.py        # prints the sizes; exit 1 over budget
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements-lambda.txt"
DEPS = ROOT / "build" / "lambda-deps"
OUT = ROOT / "build" / "lambda"
BUNDLE = OUT / "trainbot.zip"
SIZES = OUT / "sizes.json"

RUNTIME = ("--platform", "manylinux2014_x86_64", "--implementation", "cp",
           "--python-version", "3.12", "--only-binary=:all:")
# What the python3.12 runtime already has (boto3 and what it depends on; aws-xray-sdk pulls
# botocore in): a second copy would add ~35 MB and shadow the runtime's.
PROVIDED = ("bin", "boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py",
            "__pycache__")
PROVIDED_DIST = ("boto3-", "botocore-", "s3transfer-", "jmespath-", "python_dateutil-",
                 "urllib3-", "six-")
CODE = ("bot", "functions", "algorithms")
LEFT_OUT = ("bot/localslack/", "bot/publish.py")
# Lambda allows 250 MB unzipped; trainbot keeps the Slack function (cold start on the 3 s
# ack path) far below that.
MAX_UNZIPPED = 25 * 1024 * 1024
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _fingerprint() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes() + Path(__file__).read_bytes()).hexdigest()


def build_deps() -> Path:
    """Install requirements-lambda.txt into ``build/lambda-deps/python`` unless cached."""
    stamp, target = DEPS / ".stamp", DEPS / "python"
    if stamp.is_file() and stamp.read_text().strip() == _fingerprint():
        return target
    shutil.rmtree(DEPS, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         # .pyc files made here would be for this Python, not the runtime's 3.12.
         "--no-compile", "--target", str(target), *RUNTIME, "-r", str(REQUIREMENTS)],
        check=True)
    for entry in target.iterdir():
        if entry.name in PROVIDED or entry.name.startswith(PROVIDED_DIST):
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    stamp.write_text(_fingerprint() + "\n")
    return target


def _code_files() -> Iterator[tuple[str, Path]]:
    for top in CODE:
        for path in (ROOT / top).rglob("*"):
            rel = path.relative_to(ROOT).as_posix()
            if (path.is_file() and "__pycache__" not in path.parts
                    and path.suffix not in (".pyc", ".pyo")
                    and not rel.startswith(LEFT_OUT)):
                yield rel, path


def _dep_files(deps: Path) -> Iterator[tuple[str, Path]]:
    for path in deps.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            yield path.relative_to(deps).as_posix(), path


def build_bundle() -> dict[str, int]:
    """Write the zip; return its sizes (bytes) and file count."""
    deps = build_deps()
    entries = sorted({**dict(_dep_files(deps)), **dict(_code_files())}.items())
    OUT.mkdir(parents=True, exist_ok=True)
    unzipped = 0
    with zipfile.ZipFile(BUNDLE, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, path in entries:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16  # readable by the runtime's user
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            unzipped += len(data)
            zf.writestr(info, data)
    sizes = {"zipped": BUNDLE.stat().st_size, "unzipped": unzipped, "files": len(entries)}
    SIZES.write_text(json.dumps(sizes, indent=2) + "\n")
    return sizes


def main() -> int:
    sizes = build_bundle()
    mib = 1024 * 1024
    print(f"{BUNDLE.relative_to(ROOT)}: {sizes['zipped'] / mib:.1f} MiB zipped, "
          f"{sizes['unzipped'] / mib:.1f} MiB unzipped, {sizes['files']} files")
    if sizes["unzipped"] > MAX_UNZIPPED:
        print(f"over the {MAX_UNZIPPED // mib} MiB budget", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
