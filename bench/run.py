"""`make bench`: measured, not asserted. Prints medians over several runs.

1. Wall time of the pipe's process, from process start to credentials written and identity
   checked: inside the built image (the shipped artefact; the container's own start-up is
   not counted) and from the development venv. Against it, the AWS CLI route of the seed
   article (`aws sts assume-role-with-web-identity`, jq, `aws sts get-caller-identity`).
   All against the same local STS stand-in.
2. The image's size: total, and what the pipe adds over its base (uncompressed and gzip).
"""

from __future__ import annotations

import gzip
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from tests.image.conftest import base_image, build_image, engine_answers
from tests.runner import docker_cli
from tests.standins.awscli import AWSCLI, ensure_aws_cli, ensure_jq
from tests.standins.sandbox import Sandbox, base_process_env

REPO = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
IMAGE = "aws-credentials-pipe:bench"
CLI_ROUTE = r"""
set -euo pipefail
ASSUME_ROLE_JSON=$(aws sts assume-role-with-web-identity \
  --role-arn "$AWS_OIDC_ROLE_ARN" \
  --role-session-name "BitbucketTestSession" \
  --web-identity-token "$BITBUCKET_STEP_OIDC_TOKEN" \
  --output json)
export AWS_ACCESS_KEY_ID=$(echo "$ASSUME_ROLE_JSON" | jq -r '.Credentials.AccessKeyId')
export AWS_SECRET_ACCESS_KEY=$(echo "$ASSUME_ROLE_JSON" | jq -r '.Credentials.SecretAccessKey')
export AWS_SESSION_TOKEN=$(echo "$ASSUME_ROLE_JSON" | jq -r '.Credentials.SessionToken')
aws sts get-caller-identity > /dev/null
"""
# Inside the container: time each run of the pipe's process with the shell's clock.
IN_IMAGE = (
    'for i in $(seq 0 "$RUNS"); do s=$(date +%s%N); /opt/pipe/bin/python -I -m pipe > /dev/null || exit 1; '
    'e=$(date +%s%N); [ "$i" -gt 0 ] && echo $(( (e - s) / 1000 )); done'
)


def stats(name: str, seconds: list[float]) -> float:
    median = statistics.median(seconds) * 1000
    print(
        f"  {name:<44} median {median:6.0f} ms  (min {min(seconds) * 1000:.0f}, max {max(seconds) * 1000:.0f}, n={len(seconds)})"
    )
    return median


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"benchmark command failed: {command[:3]}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return elapsed


def ensure_cli() -> Path | None:
    aws = ensure_aws_cli()
    return aws if aws is not None and ensure_jq() else None


def build() -> bool:
    proc = build_image(IMAGE)
    if proc.returncode != 0:
        print(f"  (docker build failed: {proc.stderr.strip().splitlines()[-1:]}; see `make base-image`)")
    return proc.returncode == 0


def in_image(env: dict[str, str], clone: Path) -> list[float]:
    command = [
        docker_cli(),
        "run",
        "--rm",
        "--network",
        "host",
        "-v",
        f"{clone.parent}:{clone.parent}",
        "-w",
        str(clone),
    ]
    for name in sorted(env):
        if name not in ("PATH", "HOME"):
            command += ["-e", name]
    proc = subprocess.run(
        [*command, "-e", "RUNS", "--entrypoint", "sh", IMAGE, "-c", IN_IMAGE],
        env=env | {"RUNS": str(RUNS)},
        capture_output=True,
        text=True,
        check=True,
    )
    return [int(line) / 1_000_000 for line in proc.stdout.split()]


def bench_assume(image: bool) -> None:
    print(f"assume, end to end against the local STS stand-in ({RUNS} runs each, after one warm-up):")
    with Sandbox() as box, tempfile.TemporaryDirectory() as tmp:
        box.add_oidc_provider()
        role = box.add_role("deploy")
        clone = Path(tmp) / "build"
        clone.mkdir()
        env = base_process_env(Path(tmp)) | box.step_env(clone, token=box.token(), AWS_OIDC_ROLE_ARN=role)
        pipe = [sys.executable, "-I", "-m", "pipe"]
        timed(pipe, env, clone)
        venv = stats("pipe process, development venv", [timed(pipe, env, clone) for _ in range(RUNS)])
        shipped = stats("pipe process, inside the image", in_image(env, clone)) if image else None
        aws = ensure_cli()
        if aws is None:
            print("  AWS CLI route: skipped (the AWS CLI or jq could not be installed)")
            return
        cli_env = {
            k: v for k, v in env.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")
        }
        cli_env["PATH"] = f"{aws.parent}{os.pathsep}{env['PATH']}"
        cli = ["bash", "-c", CLI_ROUTE]
        timed(cli, cli_env, clone)
        route = stats(f"AWS CLI route ({AWSCLI} + jq)", [timed(cli, cli_env, clone) for _ in range(RUNS)])
        if shipped is not None:
            print(f"  ratio, image process / CLI route: {shipped / route:.2f}   (target <= 0.30)")
        print(f"  ratio, venv process / CLI route:  {venv / route:.2f}")


def _layers(image: str, workdir: Path) -> list[tuple[str, Path]]:
    """(content digest, layer tar) for each layer, from `docker save`."""
    archive = workdir / f"{image.replace(':', '_').replace('/', '_')}.tar"
    subprocess.run([docker_cli(), "save", "-o", str(archive), image], check=True)
    target = workdir / archive.stem
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    manifest = json.loads((target / "manifest.json").read_text())[0]
    diff_ids = json.loads((target / manifest["Config"]).read_text())["rootfs"]["diff_ids"]
    return [(digest, target / layer) for digest, layer in zip(diff_ids, manifest["Layers"], strict=True)]


def bench_image() -> None:
    base = base_image() or "python:3.13-slim"

    def size(name: str) -> int:
        out = subprocess.run(
            [docker_cli(), "image", "inspect", "-f", "{{.Size}}", name],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(out.stdout)

    with tempfile.TemporaryDirectory() as tmp:
        theirs = {digest for digest, _ in _layers(base, Path(tmp))}
        added = [path for digest, path in _layers(IMAGE, Path(tmp)) if digest not in theirs]
        raw = sum(path.stat().st_size for path in added)
        packed = sum(len(gzip.compress(path.read_bytes(), 6)) for path in added)
    mb = 1_000_000
    print(f"image size ({IMAGE} on {base}):")
    print(f"  total {size(IMAGE) / mb:.1f} MB; base {size(base) / mb:.1f} MB")
    print(
        f"  layers the pipe adds: {len(added)}; {raw / mb:.1f} MB uncompressed (target <= 25 MB); {packed / mb:.1f} MB gzip"
    )


def bench_publish(targets: int = 50, latency: float = 0.1) -> None:
    """A rotation publishing to ``targets`` repositories through a Bitbucket stand-in that
    answers every request after ``latency`` seconds: default concurrency against one at a time."""
    import uuid

    from tests.runner import make_clone_dir, run_process
    from tests.standins.aws import ACCOUNT
    from tests.standins.sandbox import WORKSPACE

    print(
        f"rotate, publishing to {targets} repositories; the Bitbucket stand-in answers after {latency * 1000:.0f} ms:"
    )
    with Sandbox() as box, tempfile.TemporaryDirectory() as tmp:
        box.add_oidc_provider()
        role = box.add_role("deploy")
        token = box.bitbucket_token()
        results = {}
        for label, concurrency in (("default concurrency (16)", "16"), ("sequential baseline", "1")):
            tag = uuid.uuid4().hex[:6]
            user = f"bench-{tag}"
            box.add_user(user)
            repos = [f"bench-{tag}-{i}" for i in range(targets)]
            for repo in repos:
                box.bitbucket.add_repo(WORKSPACE, repo)
            clone = make_clone_dir(Path(tmp) / tag)
            env = box.step_env(
                clone,
                token=box.token(),
                AWS_OIDC_ROLE_ARN=role,
                ACTION="rotate",
                IAM_USER_NAME=user,
                TARGETS=",".join(f"{WORKSPACE}/{r}" for r in repos),
                BITBUCKET_ACCESS_TOKEN=token,
                BITBUCKET_API_URL=box.bitbucket.api_url,
                PUBLISH_CONCURRENCY=concurrency,
                REPORT_DIR=str(clone / "r"),
            )
            box.bitbucket.reset()
            box.bitbucket.latency = latency
            start = time.perf_counter()
            result = run_process(env, clone, f"bench-publish-{concurrency}", timeout=600)
            wall = time.perf_counter() - start
            if result.returncode != 0:
                raise SystemExit(result.output[-2000:])
            api = [e for e in box.bitbucket.log if "/pipelines-config/identity/" not in e["path"]]
            phase = max(e["time"] for e in api) - min(e["time"] for e in api) + latency
            results[label] = wall
            print(
                f"  {label:<26} rotation {wall:5.2f} s, Bitbucket phase {phase:5.2f} s, "
                f"{len(api) / targets:.1f} requests per target ({len(api)} in all)"
            )
        _ = ACCOUNT
        print(
            f"  speed-up over the baseline: {results['sequential baseline'] / results['default concurrency (16)']:.1f}x "
            "(target: rotation <= 2.5 s, <= 3 requests per target)"
        )


def main() -> None:
    bench_publish()
    image = engine_answers() and build()
    if not image:
        print("NOTICE: no image measured (no Docker engine answers, or the build failed)")
    bench_assume(image)
    if image:
        bench_image()


if __name__ == "__main__":
    main()
