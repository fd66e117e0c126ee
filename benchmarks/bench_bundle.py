"""Lambda bundle: build it with the real packaging step (``scripts/build_lambda.py``) and
report its size, what is in it, and that nothing heavy got in.

    .venv/bin/python benchmarks/bench_bundle.py [--no-osls]

The three functions (slackEvents, jobEvents, reconcile) deploy one shared artifact,
``build/lambda/trainbot.zip`` (``package.artifact`` in serverless.yml), so each function's
unzipped size is the bundle's. The Slack function must carry none of torch, tensorboard,
sagemaker, matplotlib, pandas. When ``node_modules`` is installed, ``osls package`` also
runs (offline: dummy credentials, AWS endpoints on a closed loopback port) into a temporary
folder, and the artifacts it produced are listed.

Target: ≤ 25 MiB unzipped (the budget ``scripts/build_lambda.py`` enforces).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

BUNDLE = c.ROOT / "build" / "lambda" / "trainbot.zip"
MAX_UNZIPPED = 25 * 1024 * 1024
HEAVY = ("torch", "tensorboard", "sagemaker", "matplotlib", "pandas")
MIB = 1024 * 1024
BUILD_TIMEOUT_S = 300
OSLS_TIMEOUT_S = 180


def _functions() -> dict[str, str]:
    """serverless.yml's functions → the artifact each deploys (CloudFormation tags ignored)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    config = yaml.load((c.ROOT / "serverless.yml").read_text(), Loader=Loader)
    default = ((config.get("package") or {}).get("artifact")) or "(serverless packaging)"
    return {name: ((spec or {}).get("package") or {}).get("artifact") or default
            for name, spec in (config.get("functions") or {}).items()}


def _read_bundle() -> tuple[int, int, int, Counter[str], set[str]]:
    """(zipped, unzipped, files, bytes per top-level entry, top-level names)."""
    with zipfile.ZipFile(BUNDLE) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
    per_top: Counter[str] = Counter()
    for info in infos:
        top = info.filename.split("/", 1)[0]
        per_top[top] += info.file_size
    return (BUNDLE.stat().st_size, sum(i.file_size for i in infos), len(infos), per_top,
            set(per_top))


def _package_of(top: str) -> str:
    """``slack_bolt-1.30.0.dist-info`` → ``slack_bolt``; ``yaml`` → ``yaml``."""
    name = top.split("-", 1)[0] if top.endswith((".dist-info", ".data")) else top
    return name.removesuffix(".py").lower().replace("-", "_")


def _osls(out: Path) -> tuple[str, list[tuple[str, int]]]:
    if not (c.ROOT / "node_modules" / ".bin" / "osls").exists() or shutil.which("npx") is None:
        return "skipped: node_modules (osls) not installed — `make package` installs it", []
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLS_"))}
    dead = "http://127.0.0.1:9"  # nothing listens: any AWS call fails at once, offline
    env.update({"AWS_ACCESS_KEY_ID": "AKIADUMMYDUMMYDUMMY0", "AWS_SECRET_ACCESS_KEY": "dummy",
                "AWS_REGION": c.REGION, "AWS_DEFAULT_REGION": c.REGION,
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": dead,
                "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "NO_PROXY": "",
                "SLS_TELEMETRY_DISABLED": "1", "SLS_NOTIFICATIONS_MODE": "off",
                "AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE": "1"})
    began = time.perf_counter()
    try:
        done = subprocess.run(["npx", "--no-install", "osls", "package", "--stage", "bench",
                               "--region", c.REGION, "--package", str(out)], cwd=c.ROOT,
                              env=env, capture_output=True, text=True, timeout=OSLS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"osls package timed out after {OSLS_TIMEOUT_S} s", []
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        return f"osls package failed (exit {done.returncode}): {tail}", []
    files = sorted(((p.relative_to(out).as_posix(), p.stat().st_size)
                    for p in out.rglob("*") if p.is_file()), key=lambda t: -t[1])
    return f"ran in {seconds:.1f} s (offline, into a temporary folder)", files


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-osls", action="store_true")
    args = parser.parse_args(argv)
    c.fake_aws_env()
    print("bundle: python scripts/build_lambda.py (requirements-lambda.txt wheels cached in "
          "build/lambda-deps)")
    began = time.perf_counter()
    try:
        built = subprocess.run([sys.executable, "scripts/build_lambda.py"], cwd=c.ROOT,
                               capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(f"summary: build_lambda.py timed out after {BUILD_TIMEOUT_S} s")
        c.result("lambda bundle", "build timed out", "≤ 25 MiB unzipped", "FAIL")
        return 1
    seconds = time.perf_counter() - began
    print(f"  {built.stdout.strip() or '(no output)'}  [{seconds:.1f} s, exit {built.returncode}]")
    if built.stderr.strip():
        print("  stderr: " + built.stderr.strip().splitlines()[-1])
    if not BUNDLE.is_file():
        print("summary: no bundle was built")
        c.result("lambda bundle", "not built", "≤ 25 MiB unzipped", "FAIL")
        return 1
    try:
        zipped, unzipped, files, per_top, tops = _read_bundle()
    except zipfile.BadZipFile:  # another build (a concurrent test run) was rewriting it
        time.sleep(2)
        zipped, unzipped, files, per_top, tops = _read_bundle()

    functions = _functions()
    artifacts = set(functions.values())
    print()
    print(f"{BUNDLE.relative_to(c.ROOT)}: {zipped / MIB:.2f} MiB zipped, "
          f"{unzipped / MIB:.2f} MiB unzipped ({unzipped / 1e6:.1f} MB), {files} files")
    shared = "one shared artifact" if len(artifacts) == 1 else f"{len(artifacts)} artifacts"
    print(f"functions ({shared}):")
    for name, artifact in functions.items():
        size = f"{unzipped / MIB:.2f} MiB unzipped" if artifact.endswith("trainbot.zip") else "?"
        print(f"  {name:<12} → {artifact}  ({size})")

    per_package: Counter[str] = Counter()
    for top, size in per_top.items():
        per_package[_package_of(top)] += size
    print("largest packages (unzipped, with their dist-info):")
    for name, size in per_package.most_common(12):
        print(f"  {size / MIB:7.2f} MiB  {name}")

    print("heavy packages in the Slack function's bundle:")
    found = []
    for heavy in HEAVY:
        hit = sorted(t for t in tops if _package_of(t) == heavy)
        found += hit
        print(f"  {heavy:<12} {'FOUND: ' + ', '.join(hit) if hit else 'absent'}")

    if args.no_osls:
        print("osls package: skipped (--no-osls)")
    else:
        with tempfile.TemporaryDirectory(prefix="bench-osls-") as tmp:
            note, produced = _osls(Path(tmp))
            print(f"osls package: {note}")
            for name, size in produced[:8]:
                print(f"  {size / MIB:8.2f} MiB  .serverless/{name}")
            template = Path(tmp) / "cloudformation-template-update-stack.json"
            if template.is_file():
                resources: dict[str, Any] = json.loads(template.read_text()).get(
                    "Resources", {})
                keys = {name: str((r.get("Properties", {}).get("Code") or {}).get("S3Key", "?"))
                        for name, r in resources.items()
                        if r.get("Type") == "AWS::Lambda::Function"}
                print("  Lambda functions in the template → code: " + ", ".join(
                    f"{n} → …/{k.rsplit('/', 1)[-1]}" for n, k in sorted(keys.items())))

    ok = unzipped <= MAX_UNZIPPED and not found and built.returncode == 0
    print(f"TARGET: ≤ {MAX_UNZIPPED // MIB} MiB unzipped and none of {', '.join(HEAVY)}")
    figure = (f"{unzipped / MIB:.1f} MiB unzipped, {zipped / MIB:.1f} MiB zip, {files} files; "
              f"heavy: {'none' if not found else ', '.join(found)}")
    print(f"summary: Lambda bundle (shared by all 3 functions) {figure}: "
          f"{'PASS' if ok else 'FAIL'}")
    c.result("lambda bundle", figure, "≤ 25 MiB, no heavy pkgs", c.verdict(ok))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
