"""An audit interrupted at every call it makes from its first change to its last (through
creating, delivering and announcing a key), once by killing the process after the call took
effect, once by an API error at that call, and once by a lost answer (`lost500`: the call takes
effect and answers a 500, which botocore's standard mode retries: the retry of CreateAccessKey
hears LimitExceeded, of CreateSecret ResourceExistsException, of PutSecretValue an idempotent
repeat), then re-run the same day: it must converge. Twice: a user with room for the pipe's tags,
and a user at IAM's 50-tag quota (50 tags, none the pipe's: the stand-in refuses a 51st with
LimitExceeded), whose in-flight record goes on the user's secret instead.

The user: an Active key 100 days old (replaced; deactivated by the first run on a later day, so
not by these runs of one day), an Inactive key 120 days old unused for 30 days (deleted first,
making room). After every interruption:
  S1 no key is lost that was in use: the Active key is never deleted;
  S2 every key is the old one, the one the user's secret holds, or the one the in-flight tag
     records, on the user or on the user's secret (so the next run knows it);
  N1 after a lost answer (the run goes on): no key is stranded, not even one a tag records:
     every Active key is the old one or the one the user's secret holds;
and after the re-run:
  C1 the user has the old key (still Active: the user fetches the new key with it) and one new
     Active key, which the secret holds and which works (its secret is the one IAM issued);
  C2 no in-flight tag is left (on the user or the secret), and no deactivation is recorded;
  C3 the user was e-mailed about that key, and no e-mail holds a secret;
  C4 no key is stranded: every Active key is the old one or the one the user's secret holds.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests import runner
from tests.integration.test_audit import Fleet
from tests.runner import Result
from tests.standins import registry
from tests.standins.sandbox import Sandbox

AUDIT_TAG = "aws-credentials-pipe/audit"
SUMMARY: list[str] = []
FULL = {f"team-{i:02}": "x" for i in range(49)}  # with the email tag: IAM's 50, none the pipe's


def make_fleet(sandbox: Sandbox, clone: Path, tags: dict[str, str] | None = None) -> tuple[Fleet, str, str]:
    fleet = Fleet(sandbox, clone)
    old, idle = fleet.user("alice", 100, (120, 30), tags=tags)
    fleet.sandbox.account_iam(fleet.account).update_access_key(
        UserName="alice", AccessKeyId=idle, Status="Inactive"
    )
    return fleet, old, idle


def run_interrupted(fleet: Fleet, at: int, mode: str) -> Result:
    return runner.run_interrupted(
        fleet.sandbox.interrupter,
        at,
        mode,
        env=fleet.env(),
        cwd=fleet.clone,
        label=f"audit-crash-{mode}-{at}",
    )


def held(fleet: Fleet) -> str | None:
    pair = fleet.secret("alice")
    return pair["AccessKeyId"] if pair else None


def secret_tag(fleet: Fleet) -> str:
    """The in-flight tag on the user's secret (a user with no room for it among their own)."""
    client = fleet.secrets()
    try:
        tags = client.describe_secret(SecretId="aws-credentials/alice").get("Tags") or []
    except client.exceptions.ResourceNotFoundException:
        return ""
    return next((str(t["Value"]) for t in tags if t["Key"] == AUDIT_TAG), "")


def safe_after_interruption(fleet: Fleet, old: str, idle: str, where: str) -> list[str]:
    keys, holds = fleet.keys("alice"), held(fleet)
    tag = fleet.tags("alice").get(AUDIT_TAG, "") or secret_tag(fleet)
    problems = [] if old in keys else [f"{where}: S1 the active key {old} was deleted"]
    strays = [k for k in keys if k not in (old, idle, holds)]
    for key in strays:
        if not tag.startswith("phase=create") and f"key={key}" not in tag:
            problems.append(f"{where}: S2 {key} is held by nobody and no tag records it ({tag!r})")
    return problems


def stranded(fleet: Fleet, old: str, where: str, rule: str) -> list[str]:
    """Active keys whose secret nobody has: neither the old key (the user's) nor the secret's."""
    holds = held(fleet)
    return [
        f"{where}: {rule} {key} is Active and nobody holds its secret (the secret holds {holds})"
        for key, status in fleet.keys("alice").items()
        if status == "Active" and key not in (old, holds)
    ]


def converged(fleet: Fleet, old: str, result: Result, where: str) -> list[str]:
    keys, holds = fleet.keys("alice"), held(fleet)
    problems = [] if result.returncode == 0 else [f"{where}: the re-run ended {result.last!r}"]
    problems += stranded(fleet, old, where, "C4")
    new = [k for k in keys if k != old]
    if keys.get(old) != "Active" or len(new) != 1 or keys[new[0]] != "Active" or holds != new[0]:
        problems.append(f"{where}: C1 keys {keys}, the secret holds {holds}")
    elif fleet.sandbox.aws.issued.get(new[0]) != (fleet.secret("alice") or {}).get("SecretAccessKey"):
        problems.append(f"{where}: C1 the secret's pair is not the one IAM issued")
    tags = fleet.tags("alice")
    if AUDIT_TAG in tags or "aws-credentials-pipe/deactivated" in tags or secret_tag(fleet):
        problems.append(f"{where}: C2 tags {tags}, on the secret {secret_tag(fleet)!r}")
    mails = fleet.mails("alice@example.com")
    if not new or not any(new[0] in m["text"] and new[0] in m["html"] for m in mails):
        problems.append(f"{where}: C3 no e-mail names the new key ({len(mails)} e-mails)")
    secrets = registry.snapshot()
    if any(s in m["text"] + m["html"] for m in mails for s in secrets):
        problems.append(f"{where}: C3 an e-mail holds a secret")
    return problems


@pytest.mark.parametrize("room", ["with room for the pipe's tags", "at IAM's 50-tag quota"])
def test_an_audit_interrupted_at_every_change_converges(sandbox: Sandbox, tmp_path: Path, room: str) -> None:
    from tests.runner import make_clone_dir

    tags = FULL if room.startswith("at") else None
    baseline, _, _ = make_fleet(sandbox, make_clone_dir(tmp_path / "baseline"), tags)
    if tags:
        assert len(baseline.tags("alice")) == 50
    first = run_interrupted(baseline, 0, "kill")
    assert first.returncode == 0, first.output
    calls = list(sandbox.interrupter.calls)
    start = calls.index("AWS TagUser") + 1  # the first change (1-based)
    problems: list[str] = []
    counts: Counter[str] = Counter()
    began = time.monotonic()
    for mode in ("kill", "error", "lost500"):
        for at in range(start, len(calls) + 1):
            fleet, old, idle = make_fleet(sandbox, make_clone_dir(tmp_path / f"{mode}-{at}"), tags)
            result = run_interrupted(fleet, at, mode)
            where = f"{mode} at call {at} ({sandbox.interrupter.fired})"
            counts["interruptions"] += 1
            if mode != "kill" and not (result.returncode == 0 or result.last.startswith("✖ ")):
                problems.append(f"{where}: no ✖ line: {result.last!r}")
            problems += safe_after_interruption(fleet, old, idle, where)
            if mode == "lost500":
                problems += stranded(fleet, old, where, "N1")
                counts["lost500 runs ending ✔"] += result.returncode == 0
            again = fleet.run(f"audit-crash-rerun-{mode}-{at}")
            problems += converged(fleet, old, again, where)
            counts["mails"] += len(fleet.mails("alice@example.com"))
            if tags and len(fleet.tags("alice")) != 50:
                problems.append(f"{where}: the user's own tags changed: {fleet.tags('alice')}")
    SUMMARY.append(
        f"audit crash safety, a user {room}: calls {start}-{len(calls)} of {len(calls)} ({', '.join(calls[start - 1 :])}) "
        f"x 3 modes (kill, error, lost500) = {counts['interruptions']} interruptions, each re-run once; "
        f"{counts['lost500 runs ending ✔']} of the lost500 runs ended ✔; "
        f"{counts['mails']} e-mails to the user in all (a run that did part of the work mails that part); "
        f"{time.monotonic() - began:.0f} s; {len(problems)} invariant violation(s)"
    )
    print(SUMMARY[-1])
    assert not problems, "\n".join(problems[:20])


def test_the_invariants_can_fail(sandbox: Sandbox, tmp_path: Path) -> None:
    """S2 and C1 are not vacuous: a key nobody holds and no tag records is caught."""
    from tests.runner import make_clone_dir

    fleet, old, idle = make_fleet(sandbox, make_clone_dir(tmp_path / "made-up"))
    iam = sandbox.account_iam(fleet.account)
    iam.delete_access_key(UserName="alice", AccessKeyId=idle)
    stray = iam.create_access_key(UserName="alice")["AccessKey"]
    registry.record(stray["SecretAccessKey"])
    assert safe_after_interruption(fleet, old, idle, "made up")
    assert any(" C4 " in p for p in converged(fleet, old, Result(0, ""), "made up"))
    assert stranded(fleet, old, "made up", "N1")
