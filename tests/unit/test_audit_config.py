"""ACTION=audit's variables, validated before any call: each bad value is an InputError naming
its variable; defaults come from the schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipe import config
from pipe.config.audit import AuditSettings
from pipe.errors import InputError

KEY = {"AWS_ACCESS_KEY_ID": "AKIA" + "A" * 16, "AWS_SECRET_ACCESS_KEY": "s" * 40}


def audit(**values: str) -> AuditSettings:
    base = {"AWS_DEFAULT_REGION": "eu-west-1", "ACTION": "audit"} | KEY
    settings = config.load(base | values, cwd=Path("/work/clone"), now=1_700_000_000)
    assert settings.audit is not None
    return settings.audit


def test_the_defaults() -> None:
    found = audit()
    assert (found.mode, found.account_ids, found.organization, found.role_name) == (
        "report",
        (),
        False,
        "aws-credentials-audit",
    )
    assert (found.concurrency, found.secret_prefix, found.notify_before, found.email_tag) == (
        8,
        "aws-credentials/",
        7,
        "email",
    )
    assert (found.rotate_after, found.deactivate_after, found.delete_after) == (90, 100, 110)
    assert found.ses_region == "eu-west-1" and found.notify_from is None and not found.changes


def test_lists_and_the_organization() -> None:
    found = audit(
        IAM_USERS="alice, bob carol",
        IAM_GROUPS="- devs\n- ops",
        AUDIT_ACCOUNT_IDS="111111111111 222222222222",
    )
    assert found.users == ("alice", "bob", "carol") and found.groups == ("devs", "ops")
    assert found.account_ids == ("111111111111", "222222222222")
    assert audit(AUDIT_ACCOUNT_IDS="Organization").organization


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"AUDIT_MODE": "revoke"}, "AUDIT_MODE"),
        ({"AUDIT_MODE": "delete-all"}, "AUDIT_MODE"),
        ({"AUDIT_ACCOUNT_IDS": "12345678901"}, "AUDIT_ACCOUNT_IDS"),
        ({"AUDIT_ACCOUNT_IDS": "organisation"}, "AUDIT_ACCOUNT_IDS"),
        ({"IAM_USERS": "alice, bob smith!"}, "IAM_USERS"),
        ({"IAM_GROUPS": "devs/ops"}, "IAM_GROUPS"),
        ({"EXEMPT_GROUP": "break glass"}, "EXEMPT_GROUP"),
        ({"AUDIT_ROLE_NAME": "role name"}, "AUDIT_ROLE_NAME"),
        ({"AUDIT_CONCURRENCY": "0"}, "AUDIT_CONCURRENCY"),
        ({"AUDIT_CONCURRENCY": "33"}, "AUDIT_CONCURRENCY"),
        ({"AUDIT_SECRET_PREFIX": "keys for/"}, "AUDIT_SECRET_PREFIX"),
        ({"NOTIFY_FROM": "Security <security@example.com>"}, "NOTIFY_FROM"),
        ({"NOTIFY_FROM": "security"}, "NOTIFY_FROM"),
        ({"NOTIFY_ADMINS": "a@example.com"}, "NOTIFY_FROM"),
        ({"NOTIFY_FROM": "s@example.com", "NOTIFY_ADMINS": "a@example.com, b"}, "NOTIFY_ADMINS"),
        ({"NOTIFY_BEFORE_DAYS": "366"}, "NOTIFY_BEFORE_DAYS"),
        ({"EMAIL_TAG": "aws:email"}, "EMAIL_TAG"),
        ({"SES_REGION": "Ireland"}, "SES_REGION"),
        ({"DEACTIVATE_AFTER_DAYS": "80"}, "DEACTIVATE_AFTER_DAYS"),
        ({"AWS_ENDPOINT_URL_SESV2": "ftp://x"}, "AWS_ENDPOINT_URL_SESV2"),
    ],
)
def test_a_bad_value_names_its_variable(values: dict[str, str], variable: str) -> None:
    with pytest.raises(InputError) as err:
        audit(**values)
    assert err.value.variable == variable
    assert variable in err.value.line()


def test_revoke_with_users_or_groups_is_accepted() -> None:
    assert audit(AUDIT_MODE="Revoke", IAM_GROUPS="devs").mode == "revoke"
    assert audit(AUDIT_MODE="revoke", IAM_USERS="alice").changes


def test_the_external_id_is_never_echoed() -> None:
    with pytest.raises(InputError) as err:
        audit(AUDIT_EXTERNAL_ID="the shared id")
    assert "shared" not in err.value.line()
    assert audit(AUDIT_EXTERNAL_ID="Shared-Id_7").external_id == "Shared-Id_7"


def test_endpoints_of_the_new_services() -> None:
    settings = config.load(
        {"AWS_DEFAULT_REGION": "eu-west-1", "ACTION": "audit", "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}
        | KEY,
        cwd=Path("/work/clone"),
        now=1_700_000_000,
    )
    assert settings.endpoints["organizations"] == settings.endpoints["sesv2"] == "http://127.0.0.1:1"


def test_the_external_id_is_a_secret_masked_in_every_line(capsys: pytest.CaptureFixture[str]) -> None:
    """AUDIT_EXTERNAL_ID is documented as never printed: it is a secret of the schema, so the
    console masks it wherever it shows up, even pasted into a variable whose ✖ echoes its value."""
    from pipe.__main__ import main

    shared = "team-shared/external:id"
    environ = {"AWS_DEFAULT_REGION": "eu-west-1", "ACTION": "audit", "AUDIT_EXTERNAL_ID": shared} | KEY
    assert main(environ | {"NOTIFY_FROM": shared}) == 1
    out = capsys.readouterr().out
    assert out.startswith("✖ NOTIFY_FROM must be") and "(got '****')" in out, out
    assert shared not in out
