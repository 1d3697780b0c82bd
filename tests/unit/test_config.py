from __future__ import annotations

import re
from pathlib import Path

import jwt
import pytest

from pipe import config, sts
from pipe.config import fields
from pipe.credentials import Route
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
    assert fields.default_session_name("my repo/ü", "12", 0) == "bitbucket-my-repo-12"
    assert len(fields.default_session_name("r" * 100, "1", 0)) == 64
    assert fields.default_session_name(None, None, 1234) == "bitbucket-local-1234"


# Real lengths: a step UUID as Pipelines sets it (38 characters, braces included), repository
# slugs up to Bitbucket's 62 characters, build numbers up to six digits.
STEP = "{8f2d6a0e-3c41-4b7e-9a55-0d6e1f2c3b4a}"
STS_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)  # botocore's model: RoleSessionName


@pytest.mark.parametrize(
    "slug", ["shop", "a-b", "payments-service", "x" * 40, "my.repo_name-" * 4 + "ab", "s" * 62]
)
@pytest.mark.parametrize("build", ["1", "42", "98765", "123456"])
def test_the_default_session_name_names_the_step(slug: str, build: str) -> None:
    """Issue 17: every step of a build had one session name; CloudTrail could not tell them
    apart. The step's UUID is in it, whole; a slug is shortened so the whole fits STS's rule."""
    name = fields.default_session_name(slug, build, 0, STEP)
    assert STS_NAME.fullmatch(name) and len(name) <= 64
    assert name.startswith("bitbucket-") and name.endswith(f"-{build}-{STEP.strip('{}')}")
    assert name.startswith(f"bitbucket-{slug}-") or len(name) == 64
    other = fields.default_session_name(slug, build, 0, "{0a1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d}")
    assert other != name


def test_settings_take_the_step_from_bitbucket_step_uuid() -> None:
    s = load(**KEY, BITBUCKET_REPO_SLUG="shop", BITBUCKET_BUILD_NUMBER="42", BITBUCKET_STEP_UUID=STEP)
    assert s.session_name == f"bitbucket-shop-42-{STEP.strip('{}')}"
    assert (
        load(**KEY, BITBUCKET_REPO_SLUG="shop", BITBUCKET_BUILD_NUMBER="42").session_name
        == "bitbucket-shop-42"
    )
    given = load(**KEY, AWS_ROLE_SESSION_NAME="mine", BITBUCKET_STEP_UUID=STEP)
    assert given.session_name == "mine"


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
    assert fields.partition_of(region) == partition


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


def test_an_action_this_release_does_not_have_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every action is implemented now (audit was the last); the refusal stays for the next one."""
    import pipe.config

    assert load(**KEY, ACTION="audit").audit is not None
    monkeypatch.setattr(pipe.config, "IMPLEMENTED_ACTIONS", ("assume", "check", "rotate", "sync"))
    with pytest.raises(InputError, match="not available in this release"):
        load(**KEY, ACTION="audit")


# Issue 7, items 4 and 12: values that got past validation, or were echoed when they should not be.

ROTATE = {
    "ACTION": "rotate",
    "IAM_USER_NAME": "ci",
    "TARGETS": "ssm:/ci/key",
    "BITBUCKET_ACCESS_TOKEN": "b" * 20,
}
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def refused(variable: str, **values: str) -> InputError:
    with pytest.raises(InputError) as err:
        load(**values)
    assert err.value.variable == variable, err.value.line()
    return err.value


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AWS_ACCESS_KEY_ID", AWS_SECRET),
        ("AWS_REGION", AWS_SECRET),
        ("ALLOWED_ACCOUNT_IDS", f"123456789012 {AWS_SECRET}"),
        ("AWS_PROFILE_NAME", "ATATT3xFfGF0a1B2c3D4e5a1B2c3D4e5 x"),
        ("AWS_ROLE_SESSION_NAME", TOKEN),
    ],
)
def test_a_secret_in_the_wrong_variable_is_not_echoed(variable: str, value: str) -> None:
    values = dict(KEY) if variable != "AWS_ACCESS_KEY_ID" else {"AWS_SECRET_ACCESS_KEY": "s" * 40}
    values[variable] = value
    if variable == "AWS_REGION":
        values["AWS_DEFAULT_REGION"] = ""
    error = refused(variable, **values)
    line = error.line()
    assert value.strip() not in line and "not shown" in line, line
    for part in value.split():
        assert part not in line or part in {"123456789012", "x"}


def test_an_ordinary_bad_value_is_still_echoed() -> None:
    assert "'Europe'" in refused("AWS_DEFAULT_REGION", **KEY, AWS_DEFAULT_REGION="Europe").line()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ALLOWED_ACCOUNT_IDS", "123456789012 ١٢٣٤٥٦٧٨٩٠١٢"),  # Arabic-Indic digits: \d matches them
        ("AWS_OIDC_ROLE_ARN", "arn:aws:iam::١٢٣٤٥٦٧٨٩٠١٢:role/deploy"),
        ("AWS_OIDC_ROLE_ARN", "arn:aws:iam::123456789012:role/déploy"),
        ("AWS_ROLE_SESSION_NAME", "déploiement"),
        ("AWS_PROFILE_NAME", "prodé"),
        ("AWS_PROFILE_NAME", "DEFAULT"),  # configparser's (and botocore's) defaults section
        ("AWS_DEFAULT_REGION", "eu-west-١"),
        ("AWS_ROLE_DURATION_SECONDS", "٣٦٠٠"),  # '٣٦٠٠'.isdigit() and int('٣٦٠٠') == 3600
        ("AWS_ROLE_DURATION_SECONDS", "3600²"),  # '²'.isdigit(), int('²') raises ValueError
        ("AWS_ROLE_DURATION_SECONDS", "9" * 5000),  # int() refuses more than 4300 digits
        ("RETRY_TIMEOUT_SECONDS", "0" * 5000),
    ],
)
def test_non_ascii_and_oversized_values_are_refused(variable: str, value: str) -> None:
    values = KEY | {"AWS_OIDC_ROLE_ARN": ROLE, "BITBUCKET_STEP_OIDC_TOKEN": TOKEN, variable: value}
    refused(variable, **values)


def test_a_role_arn_ending_in_a_newline_is_refused() -> None:
    # Values are stripped, but the pattern must not rely on it: '$' matches before a final newline.
    assert sts.ROLE_ARN.match(ROLE + "\n") is None
    assert fields.SESSION_NAME.match("deploy\n") is None


@pytest.mark.parametrize(
    "policy",
    [
        "[" * 50_000 + "]" * 50_000,  # RecursionError in json
        '{"Statement": [' + "1" * 5000 + "]}",  # ValueError: int string conversion limit
        '{"Statement": [], "x": NaN}',  # json accepts NaN, AWS does not
        '{"Statement": [], "x": -Infinity}',
    ],
)
def test_a_session_policy_that_breaks_the_parser_is_an_input_error(policy: str) -> None:
    refused("AWS_ROLE_SESSION_POLICY", **KEY, AWS_ROLE_SESSION_POLICY=policy)


@pytest.mark.parametrize("targets", ["..", "../..", "acme/..", "acme/.", "./shop", "acme/"])
def test_dot_segments_in_targets_are_refused(targets: str) -> None:
    refused("TARGETS", **KEY, **(ROTATE | {"TARGETS": targets}))


@pytest.mark.parametrize(
    "targets",
    [
        "[[[[" * 20_000,  # RecursionError in the YAML parser
        "secretsmanager:clé",
        "ssm:/ci/ké",
        "profile:DEFAULT",
        "acme/shop@prod\x1b[31m",
    ],
)
def test_targets_that_are_not_targets_are_refused(targets: str) -> None:
    refused("TARGETS", **KEY, **(ROTATE | {"TARGETS": targets}))


def test_targets_that_are_valid_today_are_still_accepted() -> None:
    uuid = "{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0}"
    targets = f"acme/shop@Production, acme/shop@{uuid}, acme, acme/my.repo_1, ssm:/ci/key, profile:ci"
    s = load(**KEY, **(ROTATE | {"TARGETS": targets}))
    assert s.rotation is not None
    assert [t.kind for t in s.rotation.targets] == [
        "deployment",
        "deployment",
        "workspace",
        "repository",
        "ssm",
        "profile",
    ]
    assert s.rotation.targets[1].environment == uuid
    yaml_list = load(**KEY, **(ROTATE | {"TARGETS": "- acme/shop\n- secretsmanager:arn:aws:x:y"}))
    assert yaml_list.rotation and [t.text for t in yaml_list.rotation.targets] == [
        "acme/shop",
        "secretsmanager:arn:aws:x:y",
    ]


@pytest.mark.parametrize("source", ["ssm:/ci/ké", "secretsmanager:ci key"])
def test_a_source_that_is_not_a_store_is_refused(source: str) -> None:
    refused("SOURCE", **KEY, **(ROTATE | {"ACTION": "sync", "SOURCE": source}))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BITBUCKET_API_URL", "http://[::1"),  # urlparse raises ValueError
        ("AWS_ENDPOINT_URL", "http://[zz]/"),
        ("AWS_ENDPOINT_URL_STS", "http://bad host/"),
        ("BITBUCKET_API_URL", "https://api.bitbucket.org/\x1b[2J"),
        ("TRUST_POLICY_FILE", "t" * 5000),  # ENAMETOOLONG from is_file()
    ],
)
def test_urls_and_paths_that_break_the_parser_are_input_errors(variable: str, value: str) -> None:
    values = KEY | {"AWS_OIDC_ROLE_ARN": ROLE, variable: value}
    if variable != "TRUST_POLICY_FILE":
        values |= ROTATE | {"TARGETS": "acme/shop", "BITBUCKET_ACCESS_TOKEN": "t" * 20}
    else:
        values["ACTION"] = "check"
    refused(variable, **values)


def test_a_token_with_undecodable_bytes_is_an_input_error() -> None:
    refused("BITBUCKET_STEP_OIDC_TOKEN", AWS_OIDC_ROLE_ARN=ROLE, BITBUCKET_STEP_OIDC_TOKEN=TOKEN + "\udcff")


# Issue 7, item 8: where the pipe writes, with only the symlinks nobody in the repository controls resolved.


def test_paths_inside_the_clone_keep_their_components(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "clone").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    (real / "clone" / "elsewhere").mkdir()
    (real / "clone" / ".bitbucket").symlink_to("elsewhere")
    clone = tmp_path / "link" / "clone"
    inside = fields.canonical(clone / ".bitbucket" / "x" / ".." / "aws-credentials", clone)
    # The clone directory's own location is resolved; the committed .bitbucket symlink is kept
    # (so that pipe.files refuses it), and '..' is removed without following anything.
    assert inside == real / "clone" / ".bitbucket" / "aws-credentials"
    outside = fields.canonical(tmp_path / "link" / "reports", tmp_path / "other")
    assert outside == real / "reports"


def test_a_report_dir_with_a_symlink_inside_the_clone_is_refused_before_anything(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    (tmp_path / "elsewhere").mkdir()
    clone.mkdir()
    (clone / "out").symlink_to(tmp_path / "elsewhere")
    values = {"AWS_DEFAULT_REGION": "eu-west-1", **KEY, **ROTATE, "REPORT_DIR": "out/reports"}
    with pytest.raises(InputError, match="symlink") as err:
        config.load(values, cwd=clone, now=0)
    assert err.value.variable == "REPORT_DIR"
    (clone / "reports").mkdir()
    (clone / "reports" / "rotation.json").symlink_to(tmp_path / "elsewhere" / "x")
    with pytest.raises(InputError, match="symlink"):
        config.load(values | {"REPORT_DIR": "reports"}, cwd=clone, now=0)


def test_ci_and_the_commit_are_read_for_the_code_insights_report() -> None:
    """Bitbucket's CI=true says the step runs in Pipelines (where the auth proxy answers)."""
    inside = load(**KEY, ACTION="check", AWS_OIDC_ROLE_ARN=ROLE, CI="true", BITBUCKET_COMMIT="c" * 40)
    assert inside.check.ci is True and inside.check.commit == "c" * 40
    assert inside.check.auth_proxy_host == "host.docker.internal"
    for outside in ({}, {"CI": "false"}, {"CI": ""}):
        assert load(**KEY, ACTION="check", AWS_OIDC_ROLE_ARN=ROLE, **outside).check.ci is False
