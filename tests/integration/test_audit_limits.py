"""ACTION=audit at AWS's limits, as a process against the stand-ins (issue 15): a runner whose
clock is set apart from AWS's, an answer lost after AWS acted, a user at IAM's 50-tag limit, and
a run that outlives the hub's own session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import runner
from tests.integration.test_audit import Fleet
from tests.runner import Result
from tests.standins.sandbox import Sandbox

AUDIT_TAG = "aws-credentials-pipe/audit"


@pytest.fixture
def fleet(sandbox: Sandbox, clone: Path) -> Fleet:
    return Fleet(sandbox, clone)


def held(fleet: Fleet, user: str = "alice") -> str | None:
    pair = fleet.secret(user)
    return pair["AccessKeyId"] if pair else None


def stranded(fleet: Fleet, user: str, kept: set[str]) -> list[str]:
    """Active keys that are neither one the test set up nor the one the user's secret holds: a key
    whose secret nobody has."""
    holds = held(fleet, user)
    return [k for k, status in fleet.keys(user).items() if status == "Active" and k not in kept | {holds}]


def killed_at(fleet: Fleet, probe: Path, label: str, call: str, tags: dict[str, str] | None = None) -> Result:
    """The run killed right after ``call`` took effect (its answer never read). The call's position
    comes from a first run, not interrupted, over a twin user (the same tags) in an account of its own."""
    interrupter = fleet.sandbox.interrupter
    twin = Fleet(fleet.sandbox, probe)
    twin.user("alice", 100, tags=tags)
    first = runner.run_interrupted(interrupter, 0, "kill", env=twin.env(), cwd=probe, label=f"{label}-probe")
    assert first.returncode == 0, first.output
    at = interrupter.calls.index(f"AWS {call}") + 1
    return runner.run_interrupted(interrupter, at, "kill", env=fleet.env(), cwd=fleet.clone, label=label)


# -- item 4: the runner's clock set apart from AWS's -------------------------------------------------
@pytest.mark.parametrize("runner_ahead", [90, 290, -290])
def test_a_key_left_by_a_killed_run_is_recognised_whatever_the_runners_clock(
    sandbox: Sandbox, tmp_path: Path, runner_ahead: int
) -> None:
    """The run is killed right after CreateAccessKey (its answer never read); the next run, the same
    day, must take that key for the stopped run's (IAM's dates, not the runner's), delete it and
    deliver a new one: never leave it Active with nobody holding its secret, nor take it for the
    user's replacement."""
    from tests.runner import make_clone_dir

    sandbox.aws.clock_offset = -runner_ahead  # AWS's clock behind: the runner's ahead
    fleet = Fleet(sandbox, make_clone_dir(tmp_path / "skew"))
    old = fleet.user("alice", 100)[0]
    probe = make_clone_dir(tmp_path / "probe")
    killed = killed_at(fleet, probe, f"audit-skew-{runner_ahead}-killed", "CreateAccessKey")
    assert killed.returncode != 0 and AUDIT_TAG in fleet.tags("alice")
    [orphan] = set(fleet.keys("alice")) - {old}
    again = fleet.run(f"audit-skew-{runner_ahead}-again")
    assert again.returncode == 0, again.output
    assert orphan not in fleet.keys("alice"), (fleet.keys("alice"), again.output)
    assert stranded(fleet, "alice", {old}) == [] and held(fleet) in fleet.keys("alice")
    assert fleet.keys("alice")[old] == "Active"  # the user fetches the new key with it
    assert AUDIT_TAG not in fleet.tags("alice")


def test_the_stand_in_refuses_a_request_signed_more_than_five_minutes_away(
    sandbox: Sandbox, clone: Path
) -> None:
    """The knob's bound is AWS's: SigV4 accepts 5 minutes either way, and refuses beyond."""
    fleet = Fleet(sandbox, clone)
    fleet.user("alice", 10)
    sandbox.aws.clock_offset = -301
    result = fleet.run("audit-skew-too-far", AUDIT_MODE="report")
    assert result.returncode != 0 and "Signature not yet current" in result.last, result.output


# -- item 2: an answer lost after AWS acted ------------------------------------------------------------
def test_a_lost_create_access_key_answer_strands_no_key(fleet: Fleet) -> None:
    """CreateAccessKey makes the key and answers a 500; botocore's standard mode retries and the retry
    hears LimitExceeded (two keys). The key made is this run's own: deleted in the same run, the tag
    taken off, and the next run rotates as if nothing happened."""
    from tests.standins.aws import Fault

    old = fleet.user("alice", 95)[0]
    fleet.sandbox.aws.inject(Fault("CreateAccessKey", kind="lost500"))
    result = fleet.run("audit-lost-create")
    assert result.returncode != 0 and "LimitExceeded" in result.last and "Re-run" in result.last, (
        result.output
    )
    assert fleet.keys("alice") == {old: "Active"}, result.output  # the key AWS made is gone
    assert AUDIT_TAG not in fleet.tags("alice")
    [create] = [a for a in fleet.entry("alice")["actions"] if a["action"] == "create"]
    assert "its answer was lost" in create["reason"] and not create["done"]
    again = fleet.run("audit-lost-create-again")
    assert again.returncode == 0, again.output
    assert stranded(fleet, "alice", {old}) == [] and len(fleet.keys("alice")) == 2


def test_a_key_a_person_makes_while_the_create_is_refused_is_theirs(fleet: Fleet) -> None:
    """The run listed one key; while its CreateAccessKey is on its way, the user makes a second key
    themselves, so IAM refuses the run's with LimitExceeded on the only attempt (no retry: AWS made
    no key for the run). The person's key, made since the run began and unknown to it, is theirs:
    kept, and no in-flight record is left for the next run to claim it by."""
    import threading
    import time

    from tests.standins.aws import Fault

    old = fleet.user("alice", 95)[0]
    iam = fleet.sandbox.account_iam(fleet.account)
    fleet.sandbox.aws.inject(Fault("CreateAccessKey", kind="delay", seconds=3))
    fleet.sandbox.aws.forget_requests()
    theirs: list[str] = []

    def person() -> None:
        deadline = time.time() + 60
        while fleet.sandbox.aws.calls("CreateAccessKey") == 0 and time.time() < deadline:
            time.sleep(0.05)
        theirs.append(iam.create_access_key(UserName="alice")["AccessKey"]["AccessKeyId"])

    making = threading.Thread(target=person)
    making.start()
    result = fleet.run("audit-person-key")
    making.join()
    assert result.returncode != 0 and "LimitExceeded" in result.last, result.output
    assert fleet.keys("alice") == {old: "Active", theirs[0]: "Active"}, result.output
    assert AUDIT_TAG not in fleet.tags("alice")
    again = fleet.run("audit-person-key-again")
    assert theirs[0] in fleet.keys("alice"), again.output


def test_a_lost_put_secret_value_answer_keeps_the_delivered_key(fleet: Fleet) -> None:
    """PutSecretValue stores the key and answers a 500 every time (the retries too): the secret holds
    the key, so the run keeps it and tells the user, rather than deleting the key the user fetches."""
    from tests.standins.aws import Fault

    old = fleet.user("alice", 95)[0]
    fleet.sandbox.aws.inject(Fault("PutSecretValue", kind="lost500", times=3))
    result = fleet.run("audit-lost-put")
    assert result.returncode == 0, result.output
    new = held(fleet)
    assert new is not None and set(fleet.keys("alice")) == {old, new}
    assert fleet.sandbox.aws.works(new, (fleet.secret("alice") or {}).get("SecretAccessKey"))
    assert any(new in m["text"] for m in fleet.mails("alice@example.com"))


# -- item 1: IAM's 50-tag limit --------------------------------------------------------------------------
FULL = {f"team-{i:02}": "x" for i in range(49)}  # with the email tag: 50


def test_enforce_acts_on_a_user_at_the_tag_limit(fleet: Fleet) -> None:
    old = fleet.user("alice", 95, tags=FULL)[0]
    due, newer = fleet.user("bob", 120, 30, tags=FULL)
    result = fleet.run("audit-tag-limit")
    assert "state not recorded: user at IAM's 50-tag limit" in result.output, result.output
    assert result.returncode == 0, result.output
    new = held(fleet)
    assert new is not None and set(fleet.keys("alice")) == {old, new}
    assert fleet.keys("bob") == {due: "Inactive", newer: "Active"}
    assert any(new in m["text"] for m in fleet.mails("alice@example.com"))
    assert (
        "state not recorded"
        in next(a for a in fleet.entry("bob")["actions"] if a["action"] == "deactivate")["reason"]
    )
    assert len(fleet.tags("alice")) == 50 and len(fleet.tags("bob")) == 50


def test_revoke_acts_on_a_user_at_the_tag_limit(fleet: Fleet) -> None:
    key = fleet.user("alice", 10, tags=FULL)[0]
    result = fleet.run("audit-tag-limit-revoke", AUDIT_MODE="revoke", IAM_USERS="alice")
    assert result.returncode == 0, result.output
    assert fleet.keys("alice") == {key: "Inactive"}
    again = fleet.run("audit-tag-limit-revoke-again", AUDIT_MODE="revoke", IAM_USERS="alice")
    assert again.returncode == 0, again.output
    assert fleet.keys("alice") == {}


# -- item 6: a run that outlives the hub's own session -------------------------------------------------
def test_a_run_that_outlives_the_hub_session_renews_it(sandbox: Sandbox, clone: Path) -> None:
    """Every session ends 6 s after it is issued (the stand-in's `session_lifetime`), and reading the
    first account takes 5 s more than usual: the second account is entered, and both are acted on and
    their users e-mailed, after the hub's first session ended. The hub's session is renewed (the step's
    OIDC token again); the member sessions are assumed with the renewed one."""
    from tests.standins.aws import Fault

    fleet = Fleet(sandbox, clone, accounts=2)
    old = {account: fleet.user("alice", 95, account=account)[0] for account in fleet.accounts}
    sandbox.aws.session_lifetime = 6
    sandbox.aws.inject(Fault("GenerateCredentialReport", kind="delay", seconds=5))
    result = fleet.run("audit-long", AUDIT_CONCURRENCY="1")
    assert result.returncode == 0, result.output
    for account in fleet.accounts:
        pair = fleet.secret("alice", account)
        assert pair is not None and set(fleet.keys("alice", account)) == {old[account], pair["AccessKeyId"]}
    assert len(fleet.mails("alice@example.com")) == 2
    webidentity = [c for c in sandbox.aws.assume_calls if c["Action"] == "AssumeRoleWithWebIdentity"]
    assert len(webidentity) >= 2  # the hub's session, renewed


def test_with_room_for_one_tag_the_deactivation_date_is_kept(fleet: Fleet) -> None:
    """One tag short of the limit, a deactivation and its e-mail want two new tags: the date (the
    recovery window counts from it) is written, the notice record is not, and the run says so."""
    tags = {f"team-{i:02}": "x" for i in range(48)}  # with the email tag: 49
    due, newer = fleet.user("bob", 120, 30, tags=tags)
    result = fleet.run("audit-tag-room-for-one")
    assert result.returncode == 0, result.output
    assert fleet.keys("bob") == {due: "Inactive", newer: "Active"}
    assert fleet.tags("bob")["aws-credentials-pipe/deactivated"].startswith(f"{due}=")
    actions = {a["action"]: a for a in fleet.entry("bob")["actions"]}
    assert "state not recorded" in actions["notify"]["reason"] and actions["notify"]["done"]
    assert "state not recorded" not in actions["deactivate"]["reason"]


def test_a_key_left_by_a_killed_run_is_recognised_for_a_user_at_the_tag_limit(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """50 tags, none of them the pipe's: no room for the in-flight tag. The run is killed right
    after CreateAccessKey; the next run must know the key for the stopped run's (its record is on
    the user's secret), delete it and deliver a new one: never leave it Active with nobody holding
    its secret, nor take it for the user's replacement. The user's own key is never touched."""
    from tests.runner import make_clone_dir

    fleet = Fleet(sandbox, make_clone_dir(tmp_path / "full"))
    old = fleet.user("alice", 100, tags=FULL)[0]
    probe = make_clone_dir(tmp_path / "probe")
    killed = killed_at(fleet, probe, "audit-full-killed", "CreateAccessKey", tags=FULL)
    assert killed.returncode != 0 and len(fleet.tags("alice")) == 50
    [orphan] = set(fleet.keys("alice")) - {old}
    again = fleet.run("audit-full-again")
    assert again.returncode == 0, again.output
    assert orphan not in fleet.keys("alice"), (fleet.keys("alice"), again.output)
    assert stranded(fleet, "alice", {old}) == [] and held(fleet) in fleet.keys("alice")
    assert fleet.keys("alice")[old] == "Active"
    assert AUDIT_TAG not in {
        t["Key"] for t in fleet.secrets().describe_secret(SecretId="aws-credentials/alice").get("Tags", [])
    }
    assert len(fleet.tags("alice")) == 50


def test_a_key_whose_in_flight_record_fits_nowhere_is_not_created(fleet: Fleet) -> None:
    """No room among the user's tags, and the secret refuses the record too (here AccessDenied, as
    from a member role deployed before the templates granted it): no key is made that nobody could
    trace; the run ends ✖ saying what to change, and deletions still happen."""
    from tests.standins.aws import Fault

    idle, old = fleet.user("alice", (120, 30), 95, tags=FULL)
    fleet.sandbox.account_iam(fleet.account).update_access_key(
        UserName="alice", AccessKeyId=idle, Status="Inactive"
    )
    fleet.sandbox.aws.inject(Fault("TagResource", code="AccessDeniedException", message="denied"))
    result = fleet.run("audit-full-unrecorded")
    assert result.returncode != 0 and "the new key was not created" in result.last, result.output
    assert "docs/audit.md#permissions" in result.last, result.last
    assert fleet.keys("alice") == {old: "Active"}, result.output  # the inactive key deleted all the same
    [create] = [a for a in fleet.entry("alice")["actions"] if a["action"] == "create"]
    assert not create["done"] and "not created" in create["reason"]
