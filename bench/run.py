"""`make bench`: measured, not asserted. Prints medians over several runs.

1. End to end, as a user waits (issue 11, item 12): `docker run` of the image, container start
   included, from `docker run` to the container's exit (credentials written, identity
   checked); the AWS CLI route of the seed article on the host (`aws sts
   assume-role-with-web-identity`, jq, `aws sts get-caller-identity`); and a bare container of
   the same base running `python3 -I -c pass`, the floor any Python pipe stands on. The three
   alternate in one run (each round in a rotated order), so a busy machine slows them alike;
   with BENCH_BASELINE_IMAGE set, that image (an earlier build) alternates with them too.
2. Wall time of the pipe's process alone: inside the built image (container start-up not
   counted) and from the development venv, against the same CLI route.
3. The image's size: total, and what the pipe adds over its base (uncompressed and gzip).
All against the same local STS stand-in.
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
# BENCH_IMAGE: measure an image already built; BENCH_TAG: the tag to build (several people
# benchmarking on one engine each use their own).
IMAGE = os.environ.get("BENCH_IMAGE") or os.environ.get("BENCH_TAG") or "aws-credentials-pipe:bench"
BASELINE = os.environ.get("BENCH_BASELINE_IMAGE", "")
TARGET_CLI, TARGET_BARE = 0.33, 2.0  # issue 17: image end to end / CLI route, / bare container
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
# Inside the container: time each run of the pipe's process (the image's entry point) with the
# shell's clock.
IN_IMAGE = (
    'for i in $(seq 0 "$RUNS"); do s=$(date +%s%N); /opt/pipe/bin/python -I -S /opt/pipe/bin/entrypoint.py > /dev/null || exit 1; '
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
    if os.environ.get("BENCH_IMAGE"):
        return True
    proc = build_image(IMAGE)
    if proc.returncode != 0:
        print(f"  (docker build failed: {proc.stderr.strip().splitlines()[-1:]}; see `make base-image`)")
    return proc.returncode == 0


def docker_run_command(env: dict[str, str], clone: Path) -> list[str]:
    """`docker run` as Pipelines runs a pipe (tests/runner.py: docker_run): host network, the
    clone directory mounted at the same path and used as working directory, the step's
    variables passed by name."""
    command = [docker_cli(), "run", "--rm", "--network", "host", "-v", f"{clone.parent}:{clone.parent}"]
    command += ["-w", str(clone)]
    for name in sorted(env):
        if name not in ("PATH", "HOME"):
            command += ["-e", name]
    return command


def in_image(env: dict[str, str], clone: Path) -> list[float]:
    command = docker_run_command(env, clone)
    proc = subprocess.run(
        [*command, "-e", "RUNS", "--entrypoint", "sh", IMAGE, "-c", IN_IMAGE],
        env=env | {"RUNS": str(RUNS)},
        capture_output=True,
        text=True,
        check=True,
    )
    return [int(line) / 1_000_000 for line in proc.stdout.split()]


def cli_route(env: dict[str, str]) -> tuple[list[str], dict[str, str]] | None:
    """The CLI route's command and environment (the AWS CLI and jq on the host), or None."""
    aws = ensure_cli()
    if aws is None:
        return None
    cli_env = {k: v for k, v in env.items() if not k.startswith(("AWS_ACCESS", "AWS_SECRET"))}
    cli_env["PATH"] = f"{aws.parent}{os.pathsep}{env['PATH']}"
    return ["bash", "-c", CLI_ROUTE], cli_env


def bench_end_to_end() -> None:
    """Issue 11, item 12: the image as a user waits for it, against the CLI route and a bare
    container, alternating in one run."""
    base = base_image() or "python:3.13-slim"
    print(
        f"assume end to end, alternating in one run ({RUNS} rounds after one warm-up; each round in a "
        "rotated order):"
    )
    with Sandbox() as box, tempfile.TemporaryDirectory() as tmp:
        box.add_oidc_provider()
        role = box.add_role("deploy")
        clone = Path(tmp) / "build"
        clone.mkdir()
        env = base_process_env(Path(tmp)) | box.step_env(clone, token=box.token(), AWS_OIDC_ROLE_ARN=role)
        run = docker_run_command(env, clone)
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            f"docker run {IMAGE} (container start included)": ([*run, IMAGE], env),
            f"bare container: {base} python3 -I -c pass": (
                [*run, "--entrypoint", "python3", base, "-I", "-c", "pass"],
                env,
            ),
        }
        if BASELINE:
            commands[f"docker run {BASELINE} (baseline)"] = ([*run, BASELINE], env)
        cli = cli_route(env)
        if cli is not None:
            commands[f"AWS CLI route on the host ({AWSCLI} + jq)"] = cli
        else:
            print("  AWS CLI route: skipped (the AWS CLI or jq could not be installed)")
        names = list(commands)
        for name in names:
            timed(commands[name][0], commands[name][1], clone)
        samples: dict[str, list[float]] = {name: [] for name in names}
        for round_ in range(RUNS):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                samples[name].append(timed(commands[name][0], commands[name][1], clone))
        for name in names:
            stats(name, samples[name])
    image, bare = names[0], names[1]
    ratio("image / bare container", samples[image], samples[bare], TARGET_BARE)
    if cli is not None:
        ratio("image / CLI route", samples[image], samples[names[-1]], TARGET_CLI)
    if BASELINE:
        before = names[2]
        ratio("image / baseline", samples[image], samples[before], None)
        ratio("baseline / bare container", samples[before], samples[bare], None)
        if cli is not None:
            ratio("baseline / CLI route", samples[before], samples[names[-1]], None)


def ratio(label: str, ours: list[float], theirs: list[float], target: float | None) -> None:
    """The ratio of two commands measured in the same rounds: one ratio per round (paired, so a
    busy moment slows both), their median and spread (the middle half, and the extremes)."""
    per_round = sorted(a / b for a, b in zip(ours, theirs, strict=True))
    quartiles = statistics.quantiles(per_round, n=4) if len(per_round) > 1 else per_round * 3
    goal = f"   (target <= {target:.2f})" if target is not None else ""
    print(
        f"  ratio, {label:<27} median {statistics.median(per_round):.2f}; middle half "
        f"{quartiles[0]:.2f}-{quartiles[2]:.2f}, all {per_round[0]:.2f}-{per_round[-1]:.2f} "
        f"(per round, n={len(per_round)}); of the medians {statistics.median(ours) / statistics.median(theirs):.2f}{goal}"
    )


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
        found = cli_route(env)
        if found is None:
            print("  AWS CLI route: skipped (the AWS CLI or jq could not be installed)")
            return
        cli, cli_env = found
        timed(cli, cli_env, clone)
        route = stats(f"AWS CLI route ({AWSCLI} + jq)", [timed(cli, cli_env, clone) for _ in range(RUNS)])
        if shipped is not None:
            print(f"  ratio, image process / CLI route: {shipped / route:.2f}")
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
        f"  layers the pipe adds: {len(added)}; {raw / mb:.1f} MB uncompressed (target <= 30 MB); {packed / mb:.1f} MB gzip"
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
            "(4 requests per target since the probe before a key is made; the older target of "
            "<= 2.5 s and <= 3 requests per target predates it: docs/rotate.md)"
        )


def main() -> None:
    only = os.environ.get("BENCH_ONLY", "")  # "end-to-end": just the measurement of item 12
    if not only:
        bench_publish()
    image = engine_answers() and build()
    if not image:
        print("NOTICE: no image measured (no Docker engine answers, or the build failed)")
    if image:
        bench_end_to_end()
    if only:
        return
    bench_assume(image)
    if image:
        bench_image()


if __name__ == "__main__":
    main()
