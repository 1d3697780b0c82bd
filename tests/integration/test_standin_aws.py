"""The AWS stand-in refuses what AWS refuses, where moto alone would accept it.

Each test calls the front with boto3, as the pipe does (no pipe process here): these are the
stand-in's own tests, one per leniency of moto the front closes."""

from __future__ import annotations

import base64
import csv
import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.standins.aws import ACCOUNT
from tests.standins.sandbox import Sandbox

OTHER_ACCOUNT = "210987654321"


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = exc.value.response["Error"]
    return str(error["Code"]), str(error["Message"])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- the service model ----------------------------------------------------------------------------
def test_a_tag_value_outside_iams_pattern_is_refused(sandbox: Sandbox) -> None:
    user = unique("tagged")
    sandbox.iam.create_user(UserName=user)
    with pytest.raises(ClientError) as err:
        sandbox.iam.tag_user(UserName=user, Tags=[{"Key": "marker", "Value": '{"started": 1}'}])
    assert code_of(err) == (
        "ValidationError",
        "1 validation error detected: Value '{\"started\": 1}' at 'tags.1.member.value' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*",
    )
    sandbox.iam.tag_user(UserName=user, Tags=[{"Key": "marker", "Value": "started=1 key=AKIA0"}])


def test_a_secret_too_long_is_refused_without_echoing_it(sandbox: Sandbox) -> None:
    secrets = sandbox.aws.client("secretsmanager")
    secret = "s3cr3t-" + uuid.uuid4().hex
    with pytest.raises(ClientError) as err:
        secrets.create_secret(Name=unique("ci/too-long"), SecretString=secret * 3000)
    code, message = code_of(err)
    assert code == "ValidationException" and "Value at 'secretString'" in message
    assert secret not in str(err.value)


def test_a_secrets_first_version_is_awscurrent_whatever_its_stages_say(sandbox: Sandbox) -> None:
    """PutSecretValue: "If this is the first version of the secret, Secrets Manager automatically
    attaches the staging label AWSCURRENT to it", even when VersionStages names only AWSPENDING.
    moto does so too (pinned here: a store protocol that forgot it would pass on a lenient one)."""
    client = sandbox.aws.client("secretsmanager")
    name = unique("first-version")
    client.create_secret(Name=name)
    put = client.put_secret_value(SecretId=name, SecretString="{}", VersionStages=["AWSPENDING"])
    assert sorted(put["VersionStages"]) == ["AWSCURRENT", "AWSPENDING"]
    current = client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")
    assert current["VersionId"] == put["VersionId"]
    second = client.put_secret_value(SecretId=name, SecretString='{"a": 1}', VersionStages=["AWSPENDING"])
    assert second["VersionStages"] == ["AWSPENDING"]
    assert client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["VersionId"] == put["VersionId"]


def test_ssm_names_follow_the_documented_rules(sandbox: Sandbox) -> None:
    ssm = sandbox.aws.client("ssm")
    for name, expected in [
        ("/ci/with space", "ValidationException"),
        ("/aws-credentials-pipe/ci", "AccessDeniedException"),
        ("ci/no-leading-slash", "ValidationException"),
    ]:
        with pytest.raises(ClientError) as err:
            ssm.put_parameter(Name=name, Value="v", Type="SecureString")
        assert code_of(err)[0] == expected, name
    ssm.put_parameter(Name=f"/{unique('ci')}/key", Value="v", Type="SecureString")


def test_a_securestring_keeps_the_key_it_was_written_with_and_no_other(sandbox: Sandbox) -> None:
    """PutParameter's KeyId must name a key of the parameter's region (InvalidKeyId otherwise;
    moto stores any string); DescribeParameters shows the key; an overwrite without KeyId is
    encrypted with aws/ssm, not with the key before (moto keeps the key before)."""
    ssm = sandbox.aws.client("ssm")
    kms = sandbox.aws.client("kms")
    key = kms.create_key(Description=unique("store"))["KeyMetadata"]
    alias = f"alias/{unique('store')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    name = f"/{unique('ci')}/key"

    def key_of() -> str:
        found = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"]
        return str(found[0]["KeyId"])

    for unknown in ("alias/no-such-key", key["Arn"].replace(key["KeyId"], str(uuid.uuid4()))):
        with pytest.raises(ClientError) as err:
            ssm.put_parameter(Name=name, Value="v", Type="SecureString", KeyId=unknown)
        assert code_of(err)[0] == "InvalidKeyId", unknown
    elsewhere = sandbox.aws.client("kms", region="eu-central-1").create_key()["KeyMetadata"]["Arn"]
    with pytest.raises(ClientError) as err:
        ssm.put_parameter(Name=name, Value="v", Type="SecureString", KeyId=elsewhere)
    assert code_of(err)[0] == "InvalidKeyId"
    for given in (key["Arn"], alias, key["KeyId"]):
        ssm.put_parameter(Name=name, Value=given, Type="SecureString", KeyId=given, Overwrite=True)
        assert key_of() == given
        assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == given
    ssm.put_parameter(Name=name, Value="again", Type="SecureString", Overwrite=True)
    assert key_of() == "alias/aws/ssm"
    assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == "again"


def test_a_session_name_outside_the_pattern_is_refused(sandbox: Sandbox) -> None:
    sts = sandbox.aws.client("sts")
    with pytest.raises(sts.exceptions.ClientError) as err:
        sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/deploy", RoleSessionName="ci session")
    assert code_of(err)[0] == "ValidationError" and "at 'roleSessionName'" in code_of(err)[1]


# -- sts:AssumeRole -------------------------------------------------------------------------------
def trust(principal: Any, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": "sts:AssumeRole",
    }
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def sts_as(sandbox: Sandbox, key: tuple[str, str], token: str | None = None) -> Any:
    credentials = {"aws_access_key_id": key[0], "aws_secret_access_key": key[1]}
    if token:
        credentials["aws_session_token"] = token
    return sandbox.aws.client("sts", **credentials)


def test_assume_role_into_a_role_that_does_not_exist_is_denied(sandbox: Sandbox) -> None:
    key = sandbox.add_user_key(unique("auditor"))
    sts = sts_as(sandbox, key)
    for arn in (
        f"arn:aws:iam::{ACCOUNT}:role/{unique('nobody')}",
        f"arn:aws:iam::{OTHER_ACCOUNT}:role/audit",
    ):
        with pytest.raises(ClientError) as err:
            sts.assume_role(RoleArn=arn, RoleSessionName="audit")
        code, message = code_of(err)
        assert (
            code == "AccessDenied"
            and f"not authorized to perform: sts:AssumeRole on resource: {arn}" in message
        )


def test_assume_role_follows_the_trust_policy(sandbox: Sandbox) -> None:
    allowed_user, other_user = unique("allowed"), unique("other")
    allowed, other = sandbox.add_user_key(allowed_user), sandbox.add_user_key(other_user)
    role = sandbox.iam.create_role(
        RoleName=unique("audit"),
        AssumeRolePolicyDocument=json.dumps(trust(f"arn:aws:iam::{ACCOUNT}:user/{allowed_user}")),
    )["Role"]["Arn"]
    with pytest.raises(ClientError) as err:
        sts_as(sandbox, other).assume_role(RoleArn=role, RoleSessionName="audit")
    assert code_of(err)[0] == "AccessDenied"
    answer = sts_as(sandbox, allowed).assume_role(RoleArn=role, RoleSessionName="audit")
    assert answer["AssumedRoleUser"]["Arn"].endswith(f":assumed-role/{role.split('/')[-1]}/audit")


def test_assume_role_checks_the_external_id(sandbox: Sandbox) -> None:
    key = sandbox.add_user_key(unique("vendor"))
    role = sandbox.iam.create_role(
        RoleName=unique("vendor-access"),
        AssumeRolePolicyDocument=json.dumps(
            trust(ACCOUNT, {"StringEquals": {"sts:ExternalId": "shared-id-7"}})
        ),
    )["Role"]["Arn"]
    sts = sts_as(sandbox, key)
    for external_id in (None, "wrong-id"):
        extra = {"ExternalId": external_id} if external_id else {}
        with pytest.raises(ClientError) as err:
            sts.assume_role(RoleArn=role, RoleSessionName="vendor", **extra)
        assert code_of(err)[0] == "AccessDenied", external_id
    sts.assume_role(RoleArn=role, RoleSessionName="vendor", ExternalId="shared-id-7")
    assert sandbox.aws.assume_calls[-1]["ExternalId"] == "shared-id-7"


def test_role_chaining_across_accounts(sandbox: Sandbox) -> None:
    """A role in another account, trusting a role of this one: the session of the first role
    may assume it, for at most an hour (role chaining); the user itself may not."""
    from moto.iam.models import iam_backends

    key = sandbox.add_user_key(unique("chainer"))
    hub = sandbox.iam.create_role(
        RoleName=unique("hub"), AssumeRolePolicyDocument=json.dumps(trust(ACCOUNT))
    )["Role"]["Arn"]
    spoke_name = unique("spoke")
    iam_backends[OTHER_ACCOUNT]["aws"].create_role(
        role_name=spoke_name,
        assume_role_policy_document=json.dumps(trust(hub)),
        path="/",
        permissions_boundary=None,
        description="",
        tags=[],
        max_session_duration="43200",
        linked_service=None,
    )
    spoke = f"arn:aws:iam::{OTHER_ACCOUNT}:role/{spoke_name}"
    with pytest.raises(ClientError) as err:
        sts_as(sandbox, key).assume_role(RoleArn=spoke, RoleSessionName="direct")
    assert code_of(err)[0] == "AccessDenied"
    session = sts_as(sandbox, key).assume_role(RoleArn=hub, RoleSessionName="hop1")["Credentials"]
    hop = sts_as(sandbox, (session["AccessKeyId"], session["SecretAccessKey"]), session["SessionToken"])
    with pytest.raises(ClientError) as err:
        hop.assume_role(RoleArn=spoke, RoleSessionName="hop2", DurationSeconds=7200)
    assert code_of(err) == (
        "ValidationError",
        "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
    )
    answer = hop.assume_role(RoleArn=spoke, RoleSessionName="hop2")
    assert answer["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{OTHER_ACCOUNT}:assumed-role/{spoke_name}/hop2"


def test_assume_role_records_the_session_policies_asked_for(sandbox: Sandbox) -> None:
    key = sandbox.add_user_key(unique("scoped"))
    role = sandbox.iam.create_role(
        RoleName=unique("scoped"), AssumeRolePolicyDocument=json.dumps(trust(ACCOUNT))
    )["Role"]["Arn"]
    policy = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}'
    )
    arns = [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}]
    sandbox.aws.forget_requests()
    sts_as(sandbox, key).assume_role(RoleArn=role, RoleSessionName="scoped", Policy=policy, PolicyArns=arns)
    assert sandbox.aws.assume_calls == [
        {
            "Action": "AssumeRole",
            "RoleArn": role,
            "RoleSessionName": "scoped",
            "Policy": policy,
            "PolicyArns": arns,
        }
    ]


# -- key ages, for ListAccessKeys and the credential report -------------------------------------
def test_age_is_what_iam_and_its_credential_report_say(sandbox: Sandbox) -> None:
    user = unique("aged")
    used, idle = sandbox.add_user_key(user)[0], sandbox.add_user_key(user)[0]
    sandbox.aws.age(used, 120, last_used_days_ago=3)
    sandbox.aws.age(idle, 30)
    now = datetime.now(UTC)

    def days_ago(when: datetime) -> float:
        return (now - when.astimezone(UTC)) / timedelta(days=1)

    created = {
        k["AccessKeyId"]: k["CreateDate"]
        for k in sandbox.iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    }
    assert round(days_ago(created[used])) == 120 and round(days_ago(created[idle])) == 30
    assert (
        round(
            days_ago(
                sandbox.iam.get_access_key_last_used(AccessKeyId=used)["AccessKeyLastUsed"]["LastUsedDate"]
            )
        )
        == 3
    )
    assert "LastUsedDate" not in sandbox.iam.get_access_key_last_used(AccessKeyId=idle)["AccessKeyLastUsed"]

    sandbox.aws.expire_credential_reports(ACCOUNT)  # IAM keeps a report four hours: a fresh one
    sandbox.iam.generate_credential_report()
    report = sandbox.iam.get_credential_report()["Content"]
    text = report.decode() if isinstance(report, bytes) else base64.b64decode(report).decode()
    [row] = [r for r in csv.DictReader(io.StringIO(text)) if r["user"] == user]
    first_is_used = row["access_key_1_last_rotated"][:10] == created[used].strftime("%Y-%m-%d")
    used_n, idle_n = ("1", "2") if first_is_used else ("2", "1")
    stamp = "%Y-%m-%dT%H:%M:%S+00:00"
    assert (
        round(
            days_ago(datetime.strptime(row[f"access_key_{used_n}_last_rotated"], stamp).replace(tzinfo=UTC))
        )
        == 120
    )
    assert (
        round(
            days_ago(datetime.strptime(row[f"access_key_{idle_n}_last_rotated"], stamp).replace(tzinfo=UTC))
        )
        == 30
    )
    assert (
        round(
            days_ago(datetime.strptime(row[f"access_key_{used_n}_last_used_date"], stamp).replace(tzinfo=UTC))
        )
        == 3
    )
    assert row[f"access_key_{idle_n}_last_used_date"] == "N/A"


def test_a_signed_call_stamps_the_keys_use_again(sandbox: Sandbox) -> None:
    key = sandbox.add_user_key(unique("user"))
    sandbox.aws.age(key[0], 50, last_used_days_ago=20)
    sts_as(sandbox, key).get_caller_identity()
    last = sandbox.iam.get_access_key_last_used(AccessKeyId=key[0])["AccessKeyLastUsed"]["LastUsedDate"]
    assert abs(time.time() - last.timestamp()) < 60


# -- the credential report as IAM keeps it, SES v2's whole message, accounts ----------------------
def test_the_credential_report_is_a_snapshot_iam_keeps_for_four_hours(sandbox: Sandbox) -> None:
    """moto generates its report live at every read and dates it 2015-02-02; IAM generates one
    (STARTED, then COMPLETE), keeps it for four hours and answers that snapshot."""
    from tests.standins.sandbox import fresh_account

    account = fresh_account()
    iam = sandbox.aws.account_client("iam", account, region="us-east-1")
    iam.create_user(UserName="early")
    with pytest.raises(ClientError) as err:
        iam.get_credential_report()
    assert code_of(err)[0] == "ReportNotPresent"
    assert iam.generate_credential_report()["State"] == "STARTED"
    assert iam.generate_credential_report()["State"] == "COMPLETE"
    first = iam.get_credential_report()
    assert abs(first["GeneratedTime"].timestamp() - time.time()) < 60
    iam.create_user(UserName="late")
    assert iam.generate_credential_report()["State"] == "COMPLETE"
    again = iam.get_credential_report()
    assert again["GeneratedTime"] == first["GeneratedTime"] and b"late" not in again["Content"]
    sandbox.aws.expire_credential_reports(account)
    assert iam.generate_credential_report()["State"] == "STARTED"
    assert b"late" in iam.get_credential_report()["Content"]


def test_a_credential_report_in_progress(sandbox: Sandbox) -> None:
    from tests.standins.sandbox import fresh_account

    iam = sandbox.aws.account_client("iam", fresh_account(), region="us-east-1")
    sandbox.aws.report_delay = 30.0
    try:
        assert iam.generate_credential_report()["State"] == "STARTED"
        assert iam.generate_credential_report()["State"] == "INPROGRESS"
        with pytest.raises(ClientError) as err:
            iam.get_credential_report()
        assert code_of(err)[0] == "ReportInProgress"
    finally:
        sandbox.aws.report_delay = 0.0


def test_ses_v2_keeps_both_parts_and_refuses_an_unverified_sender(sandbox: Sandbox) -> None:
    ses = sandbox.aws.client("sesv2")
    sender, to = f"{unique('sender')}@example.com", f"{unique('to')}@example.com"
    content = {
        "Simple": {
            "Subject": {"Data": "hello"},
            "Body": {"Text": {"Data": "plain words"}, "Html": {"Data": "<p>rich words</p>"}},
        }
    }
    with pytest.raises(ClientError) as err:
        ses.send_email(FromEmailAddress=sender, Destination={"ToAddresses": [to]}, Content=content)
    assert code_of(err)[0] == "MessageRejected"
    sandbox.verify_sender(sender)
    ses.send_email(FromEmailAddress=sender, Destination={"ToAddresses": [to]}, Content=content)
    [mail] = sandbox.aws.emails_to(to)
    assert (mail["from"], mail["subject"], mail["text"], mail["html"], mail["account"]) == (
        sender,
        "hello",
        "plain words",
        "<p>rich words</p>",
        ACCOUNT,
    )


def test_an_account_clients_calls_act_in_that_account(sandbox: Sandbox) -> None:
    from tests.standins.sandbox import fresh_account

    account = fresh_account()
    user = unique("member")
    sandbox.account_user(account, user, tags={"email": "x@example.com"})
    assert user in {u["UserName"] for u in sandbox.account_iam(account).list_users()["Users"]}
    assert user not in {u["UserName"] for u in sandbox.iam.list_users()["Users"]}


# -- the call recorder (least privilege) ----------------------------------------------------------
def test_a_call_on_a_secret_that_does_not_exist_is_authorised_against_its_name_arn(sandbox: Sandbox) -> None:
    """As AWS: a by-name call on a missing secret is judged against arn:...:secret:<name> (the
    ARN its AccessDenied names, without the six random characters), so a name-prefix grant lets
    it through (ResourceNotFound) and a grant on <name>-?????? does not; CreateSecret is judged
    against the ARN the secret gets."""
    from tests.iam_policy import allowing
    from tests.standins.calls import recording

    name = unique("aws-credentials/recorded")
    secrets = sandbox.aws.client("secretsmanager")
    with recording(sandbox.aws) as recorder:
        with pytest.raises(ClientError) as err:
            secrets.describe_secret(SecretId=name)
        created = secrets.create_secret(Name=name)["ARN"]
    assert code_of(err)[0] == "ResourceNotFoundException"
    described, create = recorder.calls
    expected = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:{name}"
    assert [c.resource for c in described.checks] == [expected]
    assert [c.resource for c in create.checks] == [created] and created.startswith(expected + "-")

    def allowed(resource_pattern: str, resource: str) -> bool:
        statement = {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": resource_pattern}
        return bool(allowing([statement], "secretsmanager:DescribeSecret", resource, {}))

    prefix = f"arn:aws:secretsmanager:*:{ACCOUNT}:secret:aws-credentials/*"
    assert allowed(prefix, expected) and allowed(prefix, created)
    assert not allowed(f"arn:aws:secretsmanager:*:{ACCOUNT}:secret:{name}-??????", expected)


def test_get_access_key_info_answers_the_keys_account_as_sts_does(sandbox: Sandbox) -> None:
    """Any well-formed id gets the account it encodes (AWS's example: ASIAQNZGKIQY56JQ7WML is
    of 029608264753), an existing key its own account; moto would answer the caller's."""
    from tests.standins.sandbox import fresh_account

    account = fresh_account()
    [foreign] = sandbox.account_user(account, f"info-{uuid.uuid4().hex[:6]}")
    key_id, secret = sandbox.add_user_key(f"info-{uuid.uuid4().hex[:6]}")
    sts = sandbox.aws.client("sts", aws_access_key_id=key_id, aws_secret_access_key=secret)
    assert sts.get_access_key_info(AccessKeyId=foreign)["Account"] == account
    assert sts.get_access_key_info(AccessKeyId=key_id)["Account"] == ACCOUNT
    assert sts.get_access_key_info(AccessKeyId="ASIAQNZGKIQY56JQ7WML")["Account"] == "029608264753"


# -- IAM's quotas, Secrets Manager's idempotent repeats, answers lost after AWS acted ---------------
def test_a_users_51st_tag_is_refused(sandbox: Sandbox) -> None:
    """IAM: "Cannot exceed quota for TagsPerUser: 50"; a key already there is overwritten, and a
    user created with 51 tags is refused too (moto accepts any number of either)."""
    user = unique("tags50")
    sandbox.iam.create_user(UserName=user, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(40)])
    sandbox.iam.tag_user(UserName=user, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(40, 50)])
    sandbox.iam.tag_user(UserName=user, Tags=[{"Key": "k7", "Value": "overwritten"}])
    with pytest.raises(ClientError) as err:
        sandbox.iam.tag_user(UserName=user, Tags=[{"Key": "k50", "Value": "v"}])
    assert code_of(err) == ("LimitExceeded", "Cannot exceed quota for TagsPerUser: 50")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    sandbox.iam.untag_user(UserName=user, TagKeys=["k0"])
    sandbox.iam.tag_user(UserName=user, Tags=[{"Key": "k50", "Value": "v"}])
    with pytest.raises(ClientError) as err:
        sandbox.iam.create_user(
            UserName=unique("tags51"), Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)]
        )
    # A new user's tags are one list, which the model's max of 50 already bounds.
    assert code_of(err)[0] == "ValidationError" and "length less than or equal to 50" in code_of(err)[1]


def test_putting_an_existing_version_again_changes_nothing(sandbox: Sandbox) -> None:
    """PutSecretValue with an existing version's ClientRequestToken: the same value is ignored
    (its staging labels stay where they are, whatever VersionStages says), another value is
    ResourceExistsException."""
    secrets = sandbox.aws.client("secretsmanager")
    name = unique("ci/repeat")
    secrets.create_secret(Name=name)
    first, second = "p" * 32, "r" * 32
    secrets.put_secret_value(SecretId=name, SecretString="P", ClientRequestToken=first)
    secrets.put_secret_value(
        SecretId=name, SecretString="R", ClientRequestToken=second, VersionStages=["AWSPENDING"]
    )

    def stages() -> dict[str, list[str]]:
        versions = secrets.list_secret_version_ids(SecretId=name)["Versions"]
        return {v["VersionId"]: sorted(v.get("VersionStages", [])) for v in versions}

    before = stages()
    assert before == {first: ["AWSCURRENT"], second: ["AWSPENDING"]}
    answer = secrets.put_secret_value(
        SecretId=name, SecretString="P", ClientRequestToken=first, VersionStages=["AWSPENDING"]
    )
    assert answer["VersionId"] == first and answer["VersionStages"] == ["AWSCURRENT"]
    secrets.put_secret_value(
        SecretId=name, SecretString="R", ClientRequestToken=second, VersionStages=["AWSCURRENT"]
    )
    assert stages() == before
    with pytest.raises(ClientError) as err:
        secrets.put_secret_value(SecretId=name, SecretString="other", ClientRequestToken=second)
    assert code_of(err)[0] == "ResourceExistsException"
    assert stages() == before


def _standard(sandbox: Sandbox, service: str) -> Any:
    """A client with the pipe's retry mode (botocore's standard mode, three attempts)."""
    import boto3
    from botocore.config import Config

    from tests.standins.aws import STUB_CREDENTIALS

    return boto3.client(
        service,
        endpoint_url=sandbox.aws.url,
        region_name="eu-west-1",
        config=Config(retries={"mode": "standard", "total_max_attempts": 3}),
        **STUB_CREDENTIALS,
    )


def test_a_lost_500_acts_then_the_standard_retry_meets_what_it_did(sandbox: Sandbox) -> None:
    """Fault(kind="lost500"): AWS acts, the answer is a 500, botocore's standard mode retries."""
    from tests.standins.aws import Fault

    iam = _standard(sandbox, "iam")
    user = unique("lost500")
    iam.create_user(UserName=user)
    iam.create_access_key(UserName=user)
    sandbox.aws.inject(Fault("CreateAccessKey", kind="lost500"))
    sandbox.aws.forget_requests()
    with pytest.raises(ClientError) as err:
        iam.create_access_key(UserName=user)
    assert code_of(err) == ("LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: 2")
    assert sandbox.aws.calls("CreateAccessKey") == 2  # the first attempt made the key
    assert len(sandbox.aws.keys(user)) == 2

    key = next(iter(sandbox.aws.keys(user)))
    for fault, call in (
        ("UpdateAccessKey", lambda: iam.update_access_key(UserName=user, AccessKeyId=key, Status="Inactive")),
        ("TagUser", lambda: iam.tag_user(UserName=user, Tags=[{"Key": "a", "Value": "b"}])),
    ):
        sandbox.aws.inject(Fault(fault, kind="lost500"))
        sandbox.aws.forget_requests()
        call()  # the retry repeats what is already done: these two are idempotent in effect
        assert sandbox.aws.calls(fault) == 2
    assert sandbox.aws.keys(user)[key] == "Inactive"


def test_a_lost_500_on_secrets_manager_is_a_json_500_and_is_retried(sandbox: Sandbox) -> None:
    from tests.standins.aws import Fault

    secrets = _standard(sandbox, "secretsmanager")
    name = unique("ci/lost500")
    sandbox.aws.inject(Fault("CreateSecret", kind="lost500"))
    sandbox.aws.forget_requests()
    with pytest.raises(ClientError) as err:  # no ClientRequestToken: the retry meets the secret
        secrets.create_secret(Name=name)
    assert code_of(err)[0] == "ResourceExistsException"
    assert sandbox.aws.calls("CreateSecret") == 2
    token = "t" * 32
    sandbox.aws.inject(Fault("PutSecretValue", kind="lost500"))
    sandbox.aws.forget_requests()
    answer = secrets.put_secret_value(SecretId=name, SecretString="v", ClientRequestToken=token)
    assert answer["VersionId"] == token and sandbox.aws.calls("PutSecretValue") == 2
    sandbox.aws.inject(Fault("PutSecretValue", kind="lost500", times=3))
    with pytest.raises(ClientError) as err:
        secrets.put_secret_value(SecretId=name, SecretString="w", ClientRequestToken="u" * 32)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert code_of(err)[0] == "InternalFailure"
