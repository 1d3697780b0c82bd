"""pipe.key_lookup against botocore's Stubber (the SDK's own answers, in order): one STS call
per key, IAM only for keys of the role's account, each user's keys listed once, and every
refusal a key's error rather than a failed run."""

from __future__ import annotations

from datetime import UTC, datetime

import botocore.session
from botocore.stub import Stubber

from pipe.key_lookup import Calls, look_up
from pipe.migration import KeyFacts

OWN, OTHER = "123456789012", "210987654321"
USED, SECOND, FOREIGN, SESSION, DENIED = (
    "AKIAAAAAAAAAAAAAAAAA",
    "AKIAAAAAAAAAAAAAAAAB",
    "AKIAAAAAAAAAAAAAAAAC",
    "ASIAAAAAAAAAAAAAAAAD",
    "AKIAAAAAAAAAAAAAAAAE",
)


def client(service: str) -> object:
    return botocore.session.get_session().create_client(
        service, region_name="eu-west-1", aws_access_key_id="AKIA" + "X" * 16, aws_secret_access_key="s" * 40
    )


def test_each_key_once_and_iam_only_in_the_roles_account() -> None:
    sts, iam = client("sts"), client("iam")
    with Stubber(sts) as sts_stub, Stubber(iam) as iam_stub:
        for key, account in ((USED, OWN), (SECOND, OWN), (FOREIGN, OTHER), (SESSION, OWN), (DENIED, OWN)):
            sts_stub.add_response("get_access_key_info", {"Account": account}, {"AccessKeyId": key})
        when = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
        iam_stub.add_response(
            "get_access_key_last_used",
            {
                "UserName": "ci",
                "AccessKeyLastUsed": {"LastUsedDate": when, "ServiceName": "s3", "Region": "eu-west-1"},
            },
            {"AccessKeyId": USED},
        )
        iam_stub.add_response(
            "get_access_key_last_used",
            {"UserName": "ci", "AccessKeyLastUsed": {"ServiceName": "N/A", "Region": "N/A"}},
            {"AccessKeyId": SECOND},
        )
        iam_stub.add_client_error(
            "get_access_key_last_used",
            "AccessDenied",
            "not authorized",
            403,
            expected_params={"AccessKeyId": DENIED},
        )
        iam_stub.add_response(
            "list_access_keys",
            {
                "AccessKeyMetadata": [
                    {"UserName": "ci", "AccessKeyId": USED, "Status": "Active", "CreateDate": when},
                    {"UserName": "ci", "AccessKeyId": SECOND, "Status": "Inactive", "CreateDate": when},
                ]
            },
            {"UserName": "ci"},
        )
        calls = Calls()
        facts = look_up(
            [USED, SECOND, FOREIGN, SESSION, DENIED],
            sts=sts,
            iam=iam,
            own_account=OWN,
            concurrency=1,
            calls=calls,
        )
        sts_stub.assert_no_pending_responses()
        iam_stub.assert_no_pending_responses()
    assert facts[USED] == KeyFacts(OWN, "ci", "Active", "2026-12-05T10:00:00Z")
    assert facts[SECOND] == KeyFacts(OWN, "ci", "Inactive", None)
    assert (
        facts[FOREIGN].other_account
        and facts[FOREIGN].account_id == OTHER
        and facts[FOREIGN].iam_user is None
    )
    assert "temporary" in str(facts[SESSION].note)
    assert facts[DENIED].error == "iam:GetAccessKeyLastUsed: AccessDenied (not authorized)"
    assert calls.counts == {"sts:GetAccessKeyInfo": 5, "iam:GetAccessKeyLastUsed": 3, "iam:ListAccessKeys": 1}


def test_a_refused_sts_call_is_the_keys_error() -> None:
    sts, iam = client("sts"), client("iam")
    with Stubber(sts) as sts_stub, Stubber(iam):
        sts_stub.add_client_error("get_access_key_info", "AccessDenied", "no", 403)
        facts = look_up([USED], sts=sts, iam=iam, own_account=OWN, concurrency=4)
    assert facts[USED] == KeyFacts(error="sts:GetAccessKeyInfo: AccessDenied (no)")
