"""`make bench`, the workspace migration report (ACTION=check, CHECK_SCOPE=workspace) against
the stand-ins, measured: a workspace of WORKSPACE_BENCH_REPOS repositories (500) with 3
deployment environments each, every Bitbucket request answered after WORKSPACE_BENCH_LATENCY
seconds (0.1). Key ids sit in one repository in ten (at repository and deployment level) and in
the workspace's variables, 20 distinct keys of 20 users, each held by several repositories.

Prints the wall time of the pipe's process, the Bitbucket requests per repository (from the
stand-in's request log) and the STS and IAM calls per distinct key (from the AWS front's log),
for the full workspace and for a tenth of it: the calls per key must be the same for both (they
do not grow with the repositories). Target (issue 18): under 30 s for 500 x 3 at 100 ms.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from tests.runner import make_clone_dir, run_process
from tests.standins.aws import ACCOUNT
from tests.standins.sandbox import Sandbox

REPOS = int(os.environ.get("WORKSPACE_BENCH_REPOS", "500"))
LATENCY = float(os.environ.get("WORKSPACE_BENCH_LATENCY", "0.1"))
ENVIRONMENTS = ("Test", "Staging", "Production")
KEYS = 20
TARGET_SECONDS = 30.0


def populate(box: Sandbox, workspace: str, repos: int, keys: list[str]) -> None:
    bb = box.bitbucket
    for index in range(repos):
        slug = f"svc-{index:04d}"
        bb.add_repo(workspace, slug, ENVIRONMENTS)
        bb.put_file(workspace, slug, "bitbucket-pipelines.yml", _pipeline(oidc=index % 3 == 0))
        if index % 10 == 0:
            key = keys[(index // 10) % len(keys)]
            bb.put(workspace, slug, "", "AWS_ACCESS_KEY_ID", key, secured=False)
            production = bb.environment_uuid(workspace, slug, "production")
            bb.put(
                workspace,
                slug,
                production,
                "PROD_ACCESS_KEY_ID",
                keys[(index // 10 + 1) % len(keys)],
                secured=False,
            )
            bb.put(workspace, slug, production, "PROD_SECRET_ACCESS_KEY", "x" * 40, secured=True)
    bb.put(workspace, "", "", "SHARED_ACCESS_KEY_ID", keys[0], secured=False)


def _pipeline(oidc: bool) -> str:
    flag = "        oidc: true\n" if oidc else ""
    return f"pipelines:\n  default:\n    - step:\n{flag}        script: [make]\n"


def measure(box: Sandbox, repos: int, keys: list[str], tmp: Path) -> None:
    workspace = f"bench-{uuid.uuid4().hex[:6]}"
    populate(box, workspace, repos, keys)
    clone = make_clone_dir(tmp / workspace)
    env = box.step_env(
        clone,
        token=box.token(),
        ACTION="check",
        CHECK_SCOPE="workspace",
        AWS_OIDC_ROLE_ARN=f"arn:aws:iam::{ACCOUNT}:role/deploy",
        BITBUCKET_WORKSPACE=workspace,
        BITBUCKET_API_URL=box.bitbucket.api_url,
        BITBUCKET_ACCESS_TOKEN=box.bitbucket.access_token("repository", "pipeline"),
        REPORT_DIR=str(clone / "reports"),
    )
    box.bitbucket.reset()
    box.bitbucket.latency = LATENCY
    box.aws.forget_requests()
    started = time.monotonic()
    result = run_process(env, clone, f"bench-workspace-{repos}", timeout=600)
    elapsed = time.monotonic() - started
    box.bitbucket.latency = 0.0
    assert result.returncode == 0, result.output
    requests = sum(1 for entry in box.bitbucket.log if f"/{workspace}" in entry["path"])
    calls = Counter(action for action, _ in box.aws.requests)
    report = json.loads((clone / "reports" / "migration.json").read_text())
    seen = [k["access_key_id"] for r in report["repositories"] for k in r["keys"]]
    distinct = len({k for k in seen + [k["access_key_id"] for k in report["workspace_keys"]] if k})
    per_key = {a: calls[a] / distinct for a in ("GetAccessKeyInfo", "GetAccessKeyLastUsed", "ListAccessKeys")}
    verdict = (
        ""
        if repos != REPOS
        else (" (target < 30 s: " + ("met" if elapsed < TARGET_SECONDS else "MISSED") + ")")
    )
    print(
        f"  {repos} repositories x {len(ENVIRONMENTS)} environments, {LATENCY * 1000:.0f} ms per Bitbucket request: "
        f"{elapsed:.1f} s{verdict}"
    )
    print(f"    Bitbucket: {requests} requests, {requests / repos:.2f} per repository")
    print(
        f"    AWS, {distinct} distinct keys: "
        + ", ".join(f"{action} {per:.2f}/key" for action, per in per_key.items())
        + f"; IAM {(per_key['GetAccessKeyLastUsed'] + per_key['ListAccessKeys']):.2f} per key"
    )
    print(f"    {result.last}")


def main() -> None:
    with Sandbox() as box, tempfile.TemporaryDirectory() as tmp:
        box.bitbucket.rate_limit = 10**9
        box.add_oidc_provider()
        box.add_role("deploy")
        keys = [box.add_user_key(f"bench-ci-{uuid.uuid4().hex[:6]}")[0] for _ in range(KEYS)]
        for key in keys[::2]:
            box.aws.age(key, 200, last_used_days_ago=3)
        print("Workspace migration report (CHECK_SCOPE=workspace):")
        measure(box, max(1, REPOS // 10), keys, Path(tmp))
        measure(box, REPOS, keys, Path(tmp))


if __name__ == "__main__":
    main()
