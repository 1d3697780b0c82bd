"""`make demo`: the pipe end to end against the local stand-ins (loopback only).

1. A step with `oidc: true` assumes a role; a separate command then sources
   credentials.env and calls AWS with it (`aws sts get-caller-identity`).
2. The two failures users meet most: a step without `oidc: true`, and a role whose trust
   policy's `sub` names another repository.
The pipe runs as its Docker image (`make demo` starts an engine and finds or builds a base
first, through .ci/engine). Only when no Docker engine answers does it run the Python package,
and says so loudly; an image that does not build fails the demo.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.runner import REPO, Result, docker_run, make_clone_dir, run_process
from tests.standins.awscli import ensure_aws_cli
from tests.standins.issuer import braced
from tests.standins.sandbox import Sandbox, base_process_env

IMAGE = "aws-credentials-pipe:demo"
OUT = REPO / "demo-out"


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def show(result: Result) -> None:
    for line in result.output.rstrip().splitlines():
        print(f"   | {line}")
    print(f"   (exit {result.returncode})", flush=True)


def banner(lines: list[str]) -> None:
    width = max(len(line) for line in lines) + 4
    print("\n" + "!" * width)
    for line in lines:
        print(f"! {line.ljust(width - 4)} !")
    print("!" * width + "\n", flush=True)


def choose_runner() -> str | None:
    """ "image", "package" (no engine at all), or None (the image did not build)."""
    from tests.image.conftest import base_image, build_image, engine_answers

    if not engine_answers():
        banner(
            [
                "NO DOCKER ENGINE: this demo runs the pipe as the Python package (python -I -m pipe),",
                "NOT as its Docker image. `make demo` starts an engine itself as root with apt-get;",
                "otherwise install Docker, start it, and run `make demo` again.",
            ]
        )
        return "package"
    print(f"Building the pipe's image ({IMAGE}) on {base_image() or 'python:3.13-slim'} ...", flush=True)
    proc = build_image(IMAGE)
    if proc.returncode != 0:
        print(proc.stdout[-3000:] + proc.stderr[-3000:])
        print(
            f"✖ The image {IMAGE} did not build (above). Without registry access the base comes from "
            "`make base-image` (.ci/engine builds it); set BASE_IMAGE to build on another base."
        )
        return None
    print(
        f"Running the image {IMAGE} with `docker run --network host`, the clone directory mounted, as Pipelines does."
    )
    return "image"


def main() -> int:
    runner = choose_runner()
    if runner is None:
        return 1
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    clone = make_clone_dir(OUT)

    def pipe(env: dict[str, str], label: str) -> Result:
        return docker_run(IMAGE, env, clone, label) if runner == "image" else run_process(env, clone, label)

    with Sandbox() as box:
        box.add_oidc_provider()
        role = box.add_role("deploy")
        other = box.add_role("deploy-for-another-repo", box.trust_policy(sub=f"{braced()}:*"))
        print(
            f"Stand-ins: AWS (moto + STS web-identity checks) at {box.aws.url}, Bitbucket (OIDC issuer) at {box.bitbucket.api_url}"
        )
        print(f"Repository {box.repo_uuid} in workspace acme; role {role} trusts its steps.")

        say("1. A step with `oidc: true` runs the pipe")
        ok = pipe(box.step_env(clone, token=box.token(), AWS_OIDC_ROLE_ARN=role), "demo-ok")
        show(ok)
        env_file = clone / ".bitbucket/pipelines/generated/pipeline/pipes/aws-credentials/credentials.env"

        say("   ...and a later command of the same step uses the credentials")
        aws = ensure_aws_cli()
        call = (
            f"{aws} sts get-caller-identity --endpoint-url {box.aws.url}"
            if aws
            else (
                f"{sys.executable} -c \"import boto3; print(boto3.client('sts', endpoint_url='{box.aws.url}').get_caller_identity()['Arn'])\""
            )
        )
        print(
            f"   $ source {env_file.relative_to(REPO)} && {'aws sts get-caller-identity' if aws else 'python -c <boto3 get_caller_identity>'}"
        )
        later = subprocess.run(
            ["bash", "-c", f'source "{env_file}" && {call}'],
            env=base_process_env(OUT),
            capture_output=True,
            text=True,
            check=False,
        )
        for line in (later.stdout + later.stderr).strip().splitlines():
            print(f"   | {line}")

        say("2. The same pipe in a step WITHOUT `oidc: true`")
        no_oidc = pipe(box.step_env(clone, AWS_OIDC_ROLE_ARN=role), "demo-no-oidc")
        show(no_oidc)

        say("3. A role whose trust policy's `sub` names another repository")
        denied = pipe(box.step_env(clone, token=box.token(), AWS_OIDC_ROLE_ARN=other), "demo-denied")
        show(denied)

    expected = [
        ok.returncode == 0 and ok.last.startswith("✔"),
        later.returncode == 0 and "assumed-role/deploy/" in later.stdout,
        no_oidc.failed_with("oidc: true"),
        denied.failed_with("AccessDenied"),
    ]
    say(
        f"Demo {'done' if all(expected) else 'FAILED'}: ran the pipe as the {runner}; outputs are in {OUT.relative_to(REPO)}/"
    )
    return 0 if all(expected) else 1


if __name__ == "__main__":
    sys.exit(main())
