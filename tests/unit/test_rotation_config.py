"""The rotation's variables: the store (STORE and its default), the lease, the grace period,
KEEP_OLD_KEY."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipe import config, schema, targets
from pipe.config.rotation import RotationSettings
from pipe.errors import InputError

KEY = {"AWS_ACCESS_KEY_ID": "AKIA" + "A" * 16, "AWS_SECRET_ACCESS_KEY": "s" * 40}


def rotation(**values: str) -> RotationSettings:
    base = {"AWS_DEFAULT_REGION": "eu-west-1", "ACTION": "rotate", "TARGETS": "profile:default"} | KEY
    settings = config.load(base | values, cwd=Path("/work/clone"), now=1_700_000_000)
    assert settings.rotation is not None
    return settings.rotation


@pytest.mark.parametrize(
    ("value", "ok"), [("0", False), ("29", False), ("30", True), ("3600", True), ("3601", False)]
)
def test_the_lease_has_a_floor(value: str, ok: bool) -> None:
    if ok:
        assert rotation(ROTATION_LEASE_SECONDS=value).lease_seconds == int(value)
    else:
        with pytest.raises(
            InputError, match="ROTATION_LEASE_SECONDS must be a whole number of seconds from 30"
        ):
            rotation(ROTATION_LEASE_SECONDS=value)


@pytest.mark.parametrize(
    ("value", "ok"), [("0", False), ("1", True), ("365", True), ("366", False), ("x", False)]
)
def test_the_grace_period(value: str, ok: bool) -> None:
    if ok:
        assert rotation(ROTATION_GRACE_DAYS=value).grace_days == int(value)
    else:
        with pytest.raises(InputError, match="ROTATION_GRACE_DAYS"):
            rotation(ROTATION_GRACE_DAYS=value)
    assert rotation().grace_days == 7


def test_keep_old_key() -> None:
    assert rotation().keep_old_key is False and rotation(KEEP_OLD_KEY="TRUE").keep_old_key is True
    with pytest.raises(InputError, match="KEEP_OLD_KEY"):
        rotation(KEEP_OLD_KEY="yes")


def test_the_store_defaults_to_the_first_store_target_else_an_ssm_parameter_per_user() -> None:
    assert rotation().store_for("ci") == targets.TargetSpec(
        "ssm", "ssm:/bitbucket-pipes/aws-credentials-pipe/ci", name="/bitbucket-pipes/aws-credentials-pipe/ci"
    )
    two = rotation(TARGETS="acme/shop, ssm:/a, secretsmanager:b", BITBUCKET_ACCESS_TOKEN="t")
    assert two.store_for("ci") == targets.parse_target("ssm:/a")
    chosen = rotation(TARGETS="acme/shop, ssm:/a", STORE="secretsmanager:ci/key", BITBUCKET_ACCESS_TOKEN="t")
    assert chosen.store_for("ci") == targets.parse_target("secretsmanager:ci/key")
    assert rotation(STORE="None").store_for("ci") is None


@pytest.mark.parametrize("value", ["acme/shop", "profile:default", "s3:bucket", "none please"])
def test_a_store_must_be_ssm_or_secretsmanager(value: str) -> None:
    with pytest.raises(InputError, match="STORE"):
        rotation(STORE=value)


@pytest.mark.parametrize(
    ("user", "name"),
    [
        ("ci-deployer", "ci-deployer"),
        ("dev.ops", "dev.ops"),
        ("ci_deployer", "ci__deployer"),
        ("jane+ci@acme.com", "jane_2Bci_40acme.com"),
        ("a=b,c", "a_3Db_2Cc"),
        ("é", "_C3_A9"),
    ],
)
def test_the_default_store_name_escapes_what_ssm_does_not_allow(user: str, name: str) -> None:
    full = targets.default_store_name(user)
    assert full == f"/bitbucket-pipes/aws-credentials-pipe/{name}"
    # What SSM allows in a name; and not a reserved prefix ("aws" or "ssm", case-insensitive).
    assert re.fullmatch(r"[A-Za-z0-9_./-]{1,1011}", full)
    assert not full.lstrip("/").lower().startswith(("aws", "ssm"))


def test_two_users_never_share_a_default_store() -> None:
    users = ["a@b", "a_40b", "a_b", "a__b", "a.b", "a-b", "a+b", "a_2Bb"]
    assert len({targets.default_store_name(u) for u in users}) == len(users)


@pytest.mark.parametrize(
    "value",
    [
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "alias/ci_store-key",
        "arn:aws:kms:eu-west-1:123456789012:alias/ci-store",
        "k" * 256,
    ],
)
def test_store_kms_key_id_takes_what_putparameter_takes(value: str) -> None:
    """STORE_KMS_KEY_ID is sent as PutParameter's KeyId: any value botocore's model admits."""
    import botocore.session

    shape = botocore.session.get_session().get_service_model("ssm").shape_for("ParameterKeyId")
    assert re.fullmatch(shape.metadata["pattern"].strip("^$"), value) and len(value) <= shape.metadata["max"]
    assert schema.first_pass({"STORE_KMS_KEY_ID": value}) == {"STORE_KMS_KEY_ID": value}
    assert rotation(STORE_KMS_KEY_ID=value).store_kms_key_id == value
    assert rotation().store_kms_key_id is None and rotation(STORE_KMS_KEY_ID="").store_kms_key_id is None


@pytest.mark.parametrize("value", ["alias/with space", "alias/ci.key", "k" * 257, "alias/ci\nx", "key*"])
def test_store_kms_key_id_refuses_what_putparameter_refuses(value: str) -> None:
    import botocore.session

    shape = botocore.session.get_session().get_service_model("ssm").shape_for("ParameterKeyId")
    assert not (
        re.fullmatch(shape.metadata["pattern"].strip("^$"), value) and len(value) <= shape.metadata["max"]
    )
    with pytest.raises(InputError, match="STORE_KMS_KEY_ID"):
        schema.first_pass({"STORE_KMS_KEY_ID": value})
