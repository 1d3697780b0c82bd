"""`make bench`, the audit part: ACTION=audit in `report` mode against the stand-ins, measured,
not asserted. Prints the API calls per audited account (from the AWS front's request log, each
request attributed to the account of the key that signed it) and the wall time of the pipe's
process (median of AUDIT_BENCH_RUNS runs, a fresh credential report each run):

1. one member account of 100 users (the baseline);
2. one member account of 1,000 users;
3. ten member accounts of 100 users each (AUDIT_CONCURRENCY 8).

Targets (issue 9): calls per account do not grow with the number of users (at most 10, plus one
per group), and the ten-account run takes less than 3x the one-account run of 100 users.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.runner import make_clone_dir, run_process
from tests.standins.aws import ACCOUNT
from tests.standins.sandbox import Sandbox

RUNS = int(os.environ.get("AUDIT_BENCH_RUNS", "5"))


def populate(box: Sandbox, account: str, users: int) -> None:
    """``users`` users with one young key each, through the front (8 at a time)."""
    iam = box.account_iam(account)

    def one(index: int) -> None:
        name = f"user-{index:05d}"
        iam.create_user(UserName=name, Tags=[{"Key": "email", "Value": f"{name}@example.com"}])
        iam.create_access_key(UserName=name)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(users)))


def calls_by_account(box: Sandbox) -> Counter[str]:
    """Requests by the account of the key that signed them (unsigned ones: the hub's)."""
    counted: Counter[str] = Counter()
    for _, key in box.aws.requests:
        counted[account_of(key) if key else ACCOUNT] += 1
    return counted


def measure(box: Sandbox, role: str, accounts: list[str], label: str, tmp: Path) -> float:
    clone = make_clone_dir(tmp / label.replace(" ", "-").replace(",", ""))
    env = box.step_env(
        clone,
        token=box.token(),
        AWS_OIDC_ROLE_ARN=role,
        ACTION="audit",
        AUDIT_MODE="report",
        AUDIT_ACCOUNT_IDS=",".join(accounts),
        REPORT_DIR=str(clone / "reports"),
    )
    walls = []
    per_account: list[int] = []
    first: list[str] = []
    hub = 0
    for _ in range(RUNS):
        box.aws.expire_credential_reports()
        box.aws.forget_requests()
        env["BITBUCKET_STEP_OIDC_TOKEN"] = box.token()
        start = time.perf_counter()
        result = run_process(env, clone, f"bench-audit-{label}", timeout=600)
        walls.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(result.output[-3000:])
        counted = calls_by_account(box)
        per_account = [counted[a] for a in accounts]
        first = [action for action, key in box.aws.requests if key and account_of(key) == accounts[0]]
        hub = counted[ACCOUNT]
    wall = statistics.median(walls)
    print(
        f"  {label:<28} wall median {wall:5.2f} s (min {min(walls):.2f}, max {max(walls):.2f}); calls per "
        f"account {min(per_account)}-{max(per_account)} ({', '.join(f'{a} x{n}' for a, n in Counter(first).items())}); "
        f"the hub's {hub} (AssumeRoleWithWebIdentity, GetCallerIdentity, one AssumeRole per account)"
    )
    return wall


def account_of(key: str) -> str:
    from moto.iam.models import get_account_id_from

    return str(get_account_id_from(key))


def main() -> None:
    print(
        f"audit, AUDIT_MODE=report, against the stand-ins ({RUNS} runs each, a fresh credential report each run):"
    )
    with Sandbox() as box, tempfile.TemporaryDirectory() as tmp:
        box.add_oidc_provider()
        role = box.add_role("deploy")
        one = box.member_account(trusted=role)
        big = box.member_account(trusted=role)
        ten = [box.member_account(trusted=role) for _ in range(10)]
        started = time.perf_counter()
        for account, users in [(one, 100), (big, 1000), *[(a, 100) for a in ten]]:
            populate(box, account, users)
        print(f"  (set-up: 3,000 users in 12 accounts in {time.perf_counter() - started:.0f} s)")
        base = measure(box, role, [one], "1 account, 100 users", Path(tmp))
        measure(box, role, [big], "1 account, 1000 users", Path(tmp))
        wide = measure(box, role, ten, "10 accounts, 100 users each", Path(tmp))
        print(f"  ratio, 10 accounts / 1 account (100 users each): {wide / base:.2f}   (target < 3)")


if __name__ == "__main__":
    main()
