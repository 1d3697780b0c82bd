"""Issue 11, item 8: role ARNs, identity checks, trust statements and regional STS endpoints are
right in each partition: aws, aws-us-gov and aws-cn (whose endpoints end in .amazonaws.com.cn)."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from pipe import config, oidc, sts
from pipe.aws import AwsClients
from pipe.config import fields
from pipe.credentials import Credentials
from pipe.errors import IdentityError, InputError

PARTITIONS = [
    # (region, partition, STS's regional endpoint)
    ("eu-west-1", "aws", "https://sts.eu-west-1.amazonaws.com"),
    ("us-east-1", "aws", "https://sts.us-east-1.amazonaws.com"),
    ("us-gov-west-1", "aws-us-gov", "https://sts.us-gov-west-1.amazonaws.com"),
    ("us-gov-east-1", "aws-us-gov", "https://sts.us-gov-east-1.amazonaws.com"),
    ("cn-north-1", "aws-cn", "https://sts.cn-north-1.amazonaws.com.cn"),
    ("cn-northwest-1", "aws-cn", "https://sts.cn-northwest-1.amazonaws.com.cn"),
]
ISS = "https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
TOKEN = jwt.encode(
    {"iss": ISS, "aud": "ari:cloud:bitbucket::workspace/w", "sub": "{r}:{s}", "exp": 1_700_003_600},
    "k" * 32,
    algorithm="HS256",
)


def load(region: str, **values: str) -> config.Settings:
    base = {"AWS_DEFAULT_REGION": region, "BITBUCKET_STEP_OIDC_TOKEN": TOKEN}
    return config.load(base | values, cwd=Path("/work/clone"), now=1_700_000_000)


@pytest.mark.parametrize(("region", "partition", "endpoint"), PARTITIONS)
def test_the_regional_sts_endpoint_of_each_partition(region: str, partition: str, endpoint: str) -> None:
    clients = AwsClients(region, {}, 60)
    assert clients.client("sts").meta.endpoint_url == endpoint
    assert clients.client("sts", Credentials("AKIAX", "secret", "token")).meta.endpoint_url == endpoint
    assert fields.partition_of(region) == partition


@pytest.mark.parametrize(("region", "partition", "endpoint"), PARTITIONS)
def test_roles_and_identity_checks_of_each_partition(region: str, partition: str, endpoint: str) -> None:
    role_arn = f"arn:{partition}:iam::123456789012:role/ci/deploy"
    chained_arn = f"arn:{partition}:iam::210987654321:role/cross"
    settings = load(region, AWS_OIDC_ROLE_ARN=role_arn, AWS_CHAINED_ROLE_ARN=chained_arn)
    assert settings.partition == partition and settings.role is not None
    assert (settings.role.partition, settings.role.account, settings.role.name) == (
        partition,
        "123456789012",
        "deploy",
    )
    final = settings.final_role
    assert final is not None and final.arn == chained_arn
    expected = sts.expected_arn(final, "s")
    assert expected == f"arn:{partition}:sts::210987654321:assumed-role/cross/s"
    sts.verify_identity(
        sts.Identity("210987654321", expected, "AROA:s"), expected=expected, allowed_accounts=frozenset()
    )
    other = "aws-cn" if partition != "aws-cn" else "aws"
    with pytest.raises(IdentityError):
        sts.verify_identity(
            sts.Identity("210987654321", expected.replace(f"arn:{partition}:", f"arn:{other}:"), "AROA:s"),
            expected=expected,
            allowed_accounts=frozenset(),
        )


@pytest.mark.parametrize(("region", "partition", "endpoint"), PARTITIONS)
def test_the_printed_trust_statement_names_the_partitions_provider(
    region: str, partition: str, endpoint: str
) -> None:
    claims = oidc.decode(TOKEN)
    statement = oidc.trust_statement(claims, "123456789012", partition)
    provider = "api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc"
    assert (
        statement["Principal"]["Federated"] == f"arn:{partition}:iam::123456789012:oidc-provider/{provider}"
    )


@pytest.mark.parametrize(("region", "partition", "endpoint"), PARTITIONS)
@pytest.mark.parametrize("variable", ["AWS_OIDC_ROLE_ARN", "AWS_CHAINED_ROLE_ARN"])
def test_a_role_of_another_partition_is_refused_before_any_call(
    region: str, partition: str, endpoint: str, variable: str
) -> None:
    other = "aws-us-gov" if partition == "aws" else "aws"
    values = {"AWS_OIDC_ROLE_ARN": f"arn:{partition}:iam::123456789012:role/deploy"}
    values[variable] = f"arn:{other}:iam::123456789012:role/deploy"
    with pytest.raises(InputError) as error:
        load(region, **values)
    assert error.value.variable == variable and f"partition {other}" in error.value.message


@pytest.mark.parametrize(("region", "partition", "endpoint"), PARTITIONS)
def test_managed_session_policies_of_each_partition(region: str, partition: str, endpoint: str) -> None:
    own = f"arn:{partition}:iam::aws:policy/ReadOnlyAccess"
    settings = load(
        region,
        AWS_OIDC_ROLE_ARN=f"arn:{partition}:iam::123456789012:role/d",
        AWS_ROLE_SESSION_POLICY_ARNS=own,
    )
    assert settings.session_policy_arns == (own,)
    with pytest.raises(InputError, match="AWS_ROLE_SESSION_POLICY_ARNS"):
        load(
            region,
            AWS_OIDC_ROLE_ARN=f"arn:{partition}:iam::123456789012:role/d",
            AWS_ROLE_SESSION_POLICY_ARNS=own.replace(f"arn:{partition}:", "arn:aws-iso:"),
        )


def botocore_partitions() -> list[tuple[str, str, str]]:
    """(partition, a region botocore lists in it, its regionRegex), read with botocore's loader."""
    from botocore.loaders import create_loader

    data = create_loader().load_data("endpoints")
    return [(p["partition"], sorted(p["regions"])[0], p["regionRegex"]) for p in data["partitions"]]


def not_yet_known(region: str) -> str:
    """A region botocore does not list, in the same partition's pattern: the number is 99."""
    return region.rsplit("-", 1)[0] + "-99"


@pytest.mark.parametrize(("partition", "region", "pattern"), botocore_partitions())
def test_every_partition_botocore_knows(partition: str, region: str, pattern: str) -> None:
    """Issue 17: the region and partition come from botocore's endpoints.json, not a pattern
    written in the pipe: each partition's listed regions, and a region it does not list yet whose
    partition's regionRegex matches, are accepted, in that partition, and a role of that
    partition is accepted with them."""
    import re

    future = not_yet_known(region)
    for name in (region, future):
        assert re.fullmatch(pattern, name, re.ASCII)
        assert fields.partition_of(name) == partition
        settings = load(name, AWS_OIDC_ROLE_ARN=f"arn:{partition}:iam::123456789012:role/deploy")
        assert settings.partition == partition and settings.role and settings.role.partition == partition
        endpoint = AwsClients(name, {}, 60).client("sts").meta.endpoint_url
        assert endpoint.startswith(f"https://sts.{name}.")


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("eusc-de-east-1", "aws-eusc"),
        ("us-isof-south-1", "aws-iso-f"),
        ("us-isof-east-1", "aws-iso-f"),
        ("eu-isoe-west-1", "aws-iso-e"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
    ],
)
def test_the_regions_the_hand_written_rules_got_wrong(region: str, partition: str) -> None:
    """eusc-de-east-1 was refused; us-isof- and eu-isoe- regions were given partition aws."""
    settings = load(region, AWS_OIDC_ROLE_ARN=f"arn:{partition}:iam::123456789012:role/deploy")
    assert settings.partition == partition


@pytest.mark.parametrize(
    "region", ["xx-east-1", "eusc-fr-east-1", "eu-west", "us-east-1a", "EU-WEST-1", "eu-west-١"]
)
def test_a_region_no_partition_matches_is_refused(region: str) -> None:
    with pytest.raises(InputError, match="AWS_DEFAULT_REGION"):
        load(region)
