from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from pipe import config
from pipe.config import Route
from pipe.errors import InputError

ROLE = "arn:aws:iam::123456789012:role/path/to/deploy"
TOKEN = jwt.encode(
    {"iss": "https://issuer.example/oidc", "aud": "a", "sub": "{r}:{s}"}, "k" * 32, algorithm="HS256"
)
KEY = {"AWS_ACCESS_KEY_ID": "AKIA" + "A" * 16, "AWS_SECRET_ACCESS_KEY": "s" * 40}


def load(**values: str) -> config.Settings:
    base = {"AWS_DEFAULT_REGION": "eu-west-1"}
    return config.load(base | values, cwd=Path("/work/clone"), now=1_700_000_000)


def test_oidc_route_defaults() -> None:
    s = load(
        AWS_OIDC_ROLE_ARN=ROLE,
        BITBUCKET_STEP_OIDC_TOKEN=TOKEN,
        BITBUCKET_REPO_SLUG="shop",
        BITBUCKET_BUILD_NUMBER="7",
    )
    assert s.route is Route.OIDC and s.role and s.role.name == "deploy" and s.role.account == "123456789012"
    assert s.session_name == "bitbucket-shop-7"
    assert s.duration_seconds == 3600 and s.retry_timeout == 60 and s.profile_name == "default"
    assert s.credentials_dir == Path(
        "/work/clone/.bitbucket/pipelines/generated/pipeline/pipes/aws-credentials"
    )
    assert s.report_dir == Path("/work/clone/aws-credentials-reports")
    assert s.claims and s.claims.provider == "issuer.example/oidc"
    assert TOKEN in s.secrets()


def test_shared_storage_dir_wins_and_relative_paths_resolve_in_cwd() -> None:
    s = load(**KEY, BITBUCKET_PIPE_SHARED_STORAGE_DIR="/shared", REPORT_DIR="out")
    assert s.credentials_dir == Path("/shared/aws-credentials")
    assert s.report_dir == Path("/work/clone/out")


def test_default_session_name_is_cleaned_and_capped() -> None:
    assert config.default_session_name("my repo/ü", "12", 0) == "bitbucket-my-repo-12"
    assert len(config.default_session_name("r" * 100, "1", 0)) == 64
    assert config.default_session_name(None, None, 1234) == "bitbucket-local-1234"


def test_user_session_name_is_not_silently_changed() -> None:
    with pytest.raises(InputError) as err:
        load(**KEY, AWS_ROLE_SESSION_NAME="deploy from main")
    assert err.value.variable == "AWS_ROLE_SESSION_NAME"


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("eu-west-1", "aws"),
        ("cn-north-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
    ],
)
def test_partition_follows_region(region: str, partition: str) -> None:
    assert config.partition_of(region) == partition


def test_region_from_aws_region_and_empty_values_count_as_unset() -> None:
    s = config.load({"AWS_REGION": "us-east-2", "AWS_DEFAULT_REGION": "", **KEY}, cwd=Path("/"), now=0)
    assert s.region == "us-east-2"


def test_accounts_accept_commas_and_spaces_and_keep_leading_zeros() -> None:
    s = load(**KEY, ALLOWED_ACCOUNT_IDS="012345678901, 123456789012\n222222222222")
    assert s.allowed_accounts == {"012345678901", "123456789012", "222222222222"}


def test_session_policy_is_minified() -> None:
    s = load(**KEY, AWS_ROLE_SESSION_POLICY='{\n  "Statement": []\n}')
    assert s.session_policy == '{"Statement":[]}'


@pytest.mark.parametrize(
    ("values", "route", "warning"),
    [
        (KEY, Route.ACCESS_KEY, "add `oidc: true` to the step and set AWS_OIDC_ROLE_ARN"),
        (
            KEY | {"AWS_OIDC_ROLE_ARN": ROLE},
            Route.ACCESS_KEY,
            "AWS_OIDC_ROLE_ARN is set but this step has no OIDC token",
        ),
        (KEY | {"BITBUCKET_STEP_OIDC_TOKEN": TOKEN}, Route.ACCESS_KEY, "set AWS_OIDC_ROLE_ARN"),
        (KEY | {"BITBUCKET_STEP_OIDC_TOKEN": TOKEN, "AWS_OIDC_ROLE_ARN": ROLE}, Route.OIDC, ""),
    ],
)
def test_route(values: dict[str, str], route: Route, warning: str) -> None:
    s = load(**values)
    assert s.route is route and warning in s.route_warning


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({}, "BITBUCKET_STEP_OIDC_TOKEN"),
        ({"AWS_OIDC_ROLE_ARN": ROLE}, "BITBUCKET_STEP_OIDC_TOKEN"),
        ({"BITBUCKET_STEP_OIDC_TOKEN": TOKEN}, "AWS_OIDC_ROLE_ARN"),
        (KEY | {"REQUIRE_OIDC": "true"}, "BITBUCKET_STEP_OIDC_TOKEN"),
        (KEY | {"REQUIRE_OIDC": "TRUE", "BITBUCKET_STEP_OIDC_TOKEN": TOKEN}, "AWS_OIDC_ROLE_ARN"),
    ],
)
def test_no_usable_credentials(values: dict[str, str], variable: str) -> None:
    with pytest.raises(InputError) as err:
        load(**values)
    assert err.value.variable == variable


def test_not_yet_implemented_actions_are_refused_clearly() -> None:
    with pytest.raises(InputError, match="not available in this release"):
        load(**KEY, ACTION="audit")
