"""Issue 11, the pure parts: settings of the new variables, the hand-off's rendering and merging
of several profiles, proxies and NO_PROXY, account masking, misspelt names."""

from __future__ import annotations

import configparser
import io
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest

from pipe import config, handoff, shared_files, spelling
from pipe.config import network as network_config
from pipe.console import Console
from pipe.credentials import Credentials, Route
from pipe.errors import InputError
from pipe.network import Network, shown_url, url_secrets

ROLE = "arn:aws:iam::123456789012:role/deploy"
CHAINED = "arn:aws:iam::210987654321:role/cross"
TOKEN = jwt.encode(
    {"iss": "https://issuer.example/oidc", "aud": "a", "sub": "{r}:{s}"}, "k" * 32, algorithm="HS256"
)
KEY = {"AWS_ACCESS_KEY_ID": "AKIA" + "A" * 16, "AWS_SECRET_ACCESS_KEY": "s" * 40}
TEMPORARY = {
    "AWS_ACCESS_KEY_ID": "ASIA" + "B" * 16,
    "AWS_SECRET_ACCESS_KEY": "t" * 40,
    "AWS_SESSION_TOKEN": "x" * 60,
}
CREDS = Credentials("ASIAEXAMPLE", "secret", "token", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))


def load(**values: str) -> config.Settings:
    base = {"AWS_DEFAULT_REGION": "eu-west-1"}
    return config.load(base | values, cwd=Path("/work/clone"), now=1_700_000_000)


def oidc(**values: str) -> config.Settings:
    return load(AWS_OIDC_ROLE_ARN=ROLE, BITBUCKET_STEP_OIDC_TOKEN=TOKEN, **values)


# -- settings ---------------------------------------------------------------------------------


def test_chaining_after_web_identity() -> None:
    s = oidc(
        AWS_CHAINED_ROLE_ARN=CHAINED, AWS_CHAINED_EXTERNAL_ID="ext-1", ALLOWED_ACCOUNT_IDS="210987654321"
    )
    assert [(h.role.arn, h.external_id, h.variable) for h in s.hops] == [
        (CHAINED, "ext-1", "AWS_CHAINED_ROLE_ARN")
    ]
    assert s.final_role is not None and s.final_role.arn == CHAINED


def test_the_fallback_keys_role_then_the_chained_role() -> None:
    keys_role = "arn:aws:iam::123456789012:role/for-keys"
    s = load(
        AWS_ROLE_ARN_FOR_KEYS=keys_role, AWS_EXTERNAL_ID_FOR_KEYS="k-1", AWS_CHAINED_ROLE_ARN=CHAINED, **KEY
    )
    assert s.route is Route.ACCESS_KEY
    assert [h.variable for h in s.hops] == ["AWS_ROLE_ARN_FOR_KEYS", "AWS_CHAINED_ROLE_ARN"]
    # On the OIDC route the fallback key's role is not used (a step with `oidc: true` of a migration).
    assert [h.variable for h in oidc(AWS_ROLE_ARN_FOR_KEYS=keys_role, **KEY).hops] == []


def test_hops_are_validated_whatever_the_action_and_used_by_assume_only() -> None:
    with pytest.raises(InputError, match="AWS_CHAINED_ROLE_ARN"):
        oidc(ACTION="check", AWS_CHAINED_ROLE_ARN="deploy")
    assert oidc(ACTION="check", AWS_CHAINED_ROLE_ARN=CHAINED).hops == ()


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({"AWS_CHAINED_EXTERNAL_ID": "ext-1"}, "AWS_CHAINED_EXTERNAL_ID"),  # without its role
        ({"AWS_EXTERNAL_ID_FOR_KEYS": "ext-1"}, "AWS_EXTERNAL_ID_FOR_KEYS"),
        ({"AWS_CHAINED_ROLE_ARN": CHAINED, "AWS_CHAINED_EXTERNAL_ID": "x"}, "AWS_CHAINED_EXTERNAL_ID"),  # < 2
        (
            {"AWS_CHAINED_ROLE_ARN": CHAINED, "AWS_CHAINED_EXTERNAL_ID": "has space"},
            "AWS_CHAINED_EXTERNAL_ID",
        ),
        ({"CREDENTIALS_MODE": "sdk"}, "CREDENTIALS_MODE"),
        (
            {"CREDENTIALS_MODE": "web-identity", "AWS_ROLE_SESSION_POLICY": '{"Statement": []}'},
            "CREDENTIALS_MODE",
        ),
        ({"MASK_ACCOUNT_ID": "yes"}, "MASK_ACCOUNT_ID"),
    ],
)
def test_bad_values_of_the_new_variables(values: dict[str, str], variable: str) -> None:
    with pytest.raises(InputError) as error:
        oidc(**values)
    assert error.value.variable == variable


def test_a_temporary_fallback_key_needs_its_session_token_and_assume() -> None:
    s = load(**TEMPORARY)
    assert s.access_key == Credentials(TEMPORARY["AWS_ACCESS_KEY_ID"], "t" * 40, "x" * 60)
    assert "x" * 60 in s.secrets()
    with pytest.raises(InputError) as missing:
        load(**{**TEMPORARY, "AWS_SESSION_TOKEN": ""})
    assert missing.value.variable == "AWS_SESSION_TOKEN"
    with pytest.raises(InputError) as mismatched:
        load(**KEY, AWS_SESSION_TOKEN="x" * 60)
    assert mismatched.value.variable == "AWS_SESSION_TOKEN"
    with pytest.raises(InputError) as rotate:  # a temporary key cannot be rotated
        load(ACTION="rotate", IAM_USER_NAME="ci", TARGETS="profile:ci", **TEMPORARY)
    assert rotate.value.variable == "AWS_ACCESS_KEY_ID"


def test_warnings_for_what_this_run_cannot_honour() -> None:
    s = load(CREDENTIALS_MODE="web-identity", AWS_ROLE_SESSION_POLICY_ARNS="arn:aws:iam::aws:policy/A", **KEY)
    assert s.credentials_mode == "session"
    assert any("needs the step's OIDC token" in w for w in s.warnings)
    assert any("no effect on the fallback key" in w for w in s.warnings)
    assert any("TARGETS is not read by ACTION=assume" in w for w in oidc(TARGETS="acme/shop").warnings)
    assert oidc().warnings == ()


# -- the hand-off -----------------------------------------------------------------------------


def parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_writing_one_profile_keeps_the_others() -> None:
    existing = parse("[mine]\naws_access_key_id = AKIAMINE\naws_secret_access_key = x\n[ci]\nold = 1\n")
    text = handoff.render_credentials_file("ci", CREDS, existing)
    merged = parse(text)
    assert merged["mine"]["aws_access_key_id"] == "AKIAMINE"
    assert dict(merged["ci"]) == {
        "aws_access_key_id": "ASIAEXAMPLE",
        "aws_secret_access_key": "secret",
        "aws_session_token": "token",
    }
    config_text = handoff.render_config_file("ci", "eu-west-1", parse("[profile mine]\nregion = us-east-2\n"))
    assert parse(config_text)["profile mine"]["region"] == "us-east-2"
    assert dict(parse(config_text)["profile ci"]) == {"region": "eu-west-1"}


def test_web_identity_profiles_plain_and_chained(tmp_path: Path) -> None:
    web = handoff.WebIdentity(ROLE, tmp_path / "web-identity-token", "s-1")
    plain = parse(handoff.render_config_file("default", "eu-west-1", None, web))["default"]
    assert plain["role_arn"] == ROLE and plain["web_identity_token_file"] == str(
        tmp_path / "web-identity-token"
    )
    chained = handoff.WebIdentity(ROLE, tmp_path / "t", "s-1", CHAINED, "ext-1", 3600)
    parsed = parse(
        handoff.render_config_file("ci", "eu-west-1", parse("[profile ci]\nregion = x\nkeep = no\n"), chained)
    )
    assert dict(parsed["profile ci"]) == {
        "role_arn": CHAINED,
        "source_profile": "ci-oidc",
        "role_session_name": "s-1",
        "region": "eu-west-1",
        "sts_regional_endpoints": "regional",
        "external_id": "ext-1",
        "duration_seconds": "3600",
    }
    assert (
        parsed["profile ci-oidc"]["role_arn"] == ROLE
        and "web_identity_token_file" in parsed["profile ci-oidc"]
    )
    # The credentials file loses the profile's static keys: the config's profile replaces them.
    assert "[ci]" not in handoff.render_credentials_file("ci", None, parse("[ci]\naws_access_key_id = A\n"))


def sourced(text: str, tmp_path: Path, names: str) -> str:
    path = tmp_path / "c.env"
    path.write_text(text)
    script = f'export AWS_ACCESS_KEY_ID=stale AWS_SESSION_TOKEN=stale AWS_PROFILE=stale; source "$1"; {names}'
    return subprocess.run(
        ["bash", "-c", script, "x", str(path)], capture_output=True, text=True, check=True
    ).stdout


def test_web_identity_variables_replace_the_static_keys(tmp_path: Path) -> None:
    web = handoff.WebIdentity(ROLE, tmp_path / "my token", "s-1")
    text = handoff.render_env_web_identity(web, "eu-west-1", "default", tmp_path / "config")
    out = sourced(
        text,
        tmp_path,
        'printf "%s|%s|%s|%s|%s" "${AWS_ACCESS_KEY_ID-unset}" "${AWS_SESSION_TOKEN-unset}" '
        '"$AWS_ROLE_ARN" "$AWS_WEB_IDENTITY_TOKEN_FILE" "$AWS_ROLE_SESSION_NAME"',
    )
    assert out == f"unset|unset|{ROLE}|{tmp_path / 'my token'}|s-1"
    chained = handoff.WebIdentity(ROLE, tmp_path / "t", "s-1", CHAINED)
    text = handoff.render_env_web_identity(chained, "eu-west-1", "ci", tmp_path / "config")
    out = sourced(
        text, tmp_path, 'printf "%s|%s|%s" "${AWS_ROLE_ARN-unset}" "$AWS_CONFIG_FILE" "$AWS_PROFILE"'
    )
    assert out == f"unset|{tmp_path / 'config'}|ci"


def test_a_temporary_fallback_key_keeps_its_token_and_clears_the_expiry() -> None:
    text = handoff.render_env(Credentials("ASIAX", "secret", "tok"), "eu-west-1")
    assert "export AWS_SESSION_TOKEN=tok" in text and "unset AWS_CREDENTIAL_EXPIRATION" in text
    assert "unset AWS_SESSION_TOKEN" not in text


def test_a_shared_file_the_sdks_would_refuse_names_credentials_dir(tmp_path: Path) -> None:
    (tmp_path / "config").write_text("[default]\nregion = a\n[default]\nregion = b\n")
    with pytest.raises(InputError) as error:
        handoff.read_shared(tmp_path)
    assert error.value.variable == "CREDENTIALS_DIR" and "twice" in error.value.message
    assert shared_files.render(parse("[a]\nk = v\n")) == "[a]\nk = v\n\n"


# -- proxies ----------------------------------------------------------------------------------

PROXY = "http://user:pa55word@proxy.internal:3128"


@pytest.mark.parametrize(
    ("no_proxy", "url", "proxied"),
    [
        (None, "https://sts.eu-west-1.amazonaws.com/", True),
        ("", "https://sts.eu-west-1.amazonaws.com/", True),
        ("*", "https://sts.eu-west-1.amazonaws.com/", False),
        ("amazonaws.com", "https://sts.eu-west-1.amazonaws.com/", False),  # a name covers its subdomains
        (".amazonaws.com", "https://sts.eu-west-1.amazonaws.com/", False),
        ("amazonaws.com.cn", "https://sts.eu-west-1.amazonaws.com/", True),
        ("bitbucket.org", "https://api.bitbucket.org/2.0", False),
        ("127.0.0.1:8443", "https://127.0.0.1:8443/", False),  # host:port
        ("127.0.0.1:8443", "https://127.0.0.1:9443/", True),
        ("10.0.0.0/8", "https://10.1.2.3/", False),  # CIDR, as requests reads it
        ("10.0.0.0/8", "https://11.1.2.3/", True),
        ("localhost, 127.0.0.1", "http://127.0.0.1:4566/", False),
    ],
)
def test_no_proxy(no_proxy: str | None, url: str, proxied: bool) -> None:
    network = Network(https_proxy=PROXY, http_proxy=PROXY, no_proxy=no_proxy)
    assert (network.proxy_for(url) == PROXY) is proxied
    assert network.proxies(url) == (
        {"http": PROXY, "https": PROXY} if proxied else {"http": None, "https": None}
    )


def test_each_scheme_has_its_proxy() -> None:
    network = Network(https_proxy=PROXY)
    assert network.proxy_for("https://x/") == PROXY and network.proxy_for("http://x/") is None


def test_proxy_urls_are_shown_without_their_password() -> None:
    assert shown_url(PROXY) == "http://proxy.internal:3128"
    assert url_secrets(PROXY) == ("pa55word", "user:pa55word")
    assert url_secrets("proxy.internal:3128") == ()
    # Everything between :// and the last @ is the user part, as curl reads it (issue 15, item 16).
    assert url_secrets("http://u:p%2Fw/x@h:1") == ("p%2Fw/x", "p/w/x", "u:p%2Fw/x", "u:p/w/x")
    assert shown_url("http://u:1@h:1/path?q") == "http://h:1"
    assert "pa55word" not in Network(https_proxy=PROXY, no_proxy="a").describe()


def test_proxy_variables_are_parsed_like_curl_and_requests_read_them(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("pem")
    network = network_config.load(
        {"https_proxy": "proxy.internal:3128", "NO_PROXY": " a.internal , .b ", "AWS_CA_BUNDLE": "ca.pem"},
        tmp_path,
    )
    assert network == Network("http://proxy.internal:3128", None, "a.internal,.b", str(tmp_path / "ca.pem"))
    same = network_config.load({"HTTP_PROXY": PROXY, "http_proxy": PROXY}, tmp_path)
    assert same.http_proxy == PROXY


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"HTTPS_PROXY": "socks5://h:1080"}, "HTTPS_PROXY"),
        ({"HTTPS_PROXY": "http://h:1", "https_proxy": "http://h:2"}, "HTTPS_PROXY"),
        ({"http_proxy": "http://h:port"}, "http_proxy"),
        ({"HTTP_PROXY": "http://h:3128/path"}, "HTTP_PROXY"),
        ({"NO_PROXY": "a b"}, "NO_PROXY"),
        ({"AWS_CA_BUNDLE": "missing.pem"}, "AWS_CA_BUNDLE"),
    ],
)
def test_bad_proxy_values(values: dict[str, str], named: str, tmp_path: Path) -> None:
    with pytest.raises(InputError) as error:
        network_config.load(values, tmp_path)
    assert error.value.variable == named
    assert "pa55word" not in error.value.message


def test_a_password_in_a_disagreeing_proxy_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(InputError) as error:
        network_config.load({"HTTPS_PROXY": PROXY, "https_proxy": "http://h:2"}, tmp_path)
    assert "pa55word" not in error.value.message and "proxy.internal" in error.value.message


def test_no_network_settings_without_a_variable() -> None:
    assert oidc().network is None
    assert oidc(HTTPS_PROXY=PROXY).network == Network(https_proxy=PROXY)


# -- MASK_ACCOUNT_ID --------------------------------------------------------------------------


def test_account_ids_are_masked_only_where_they_stand_alone() -> None:
    stream = io.StringIO()
    console = Console(stream)
    console.mask_account_ids()
    console.success(
        "arn:aws:sts::123456789012:assumed-role/x/y; accounts 111111111111, 222222222222; "
        "repo {a1b2c3d4-0000-1111-2222-123456789012}; 1234567890123; ms 1700000000000; exp 1700000000"
    )
    out = stream.getvalue()
    assert "arn:aws:sts::************:assumed-role/x/y" in out
    assert "111111111111" not in out and "222222222222" not in out
    assert "-123456789012}" in out and "1234567890123" in out and "1700000000000" in out


def test_account_ids_are_shown_without_mask_account_id() -> None:
    stream = io.StringIO()
    Console(stream).success("arn:aws:sts::123456789012:assumed-role/x/y")
    assert "123456789012" in stream.getvalue()


# -- misspelt variables -----------------------------------------------------------------------


def test_names_close_to_ours_get_a_suggestion() -> None:
    names = [
        "AWS_OIDC_ROLE_ARM",
        "AWS_ROLE_SESION_NAME",
        "AWS_ROLE_ARN",  # the SDK's name: the pipe's is AWS_OIDC_ROLE_ARN
        "DRYRUN",
        "BITBUCKET_ACESS_TOKEN",
        "https_proxy",  # ours (lower case is not checked)
        "HTTPS_PROXI",
    ]
    assert dict(spelling.suggestions(names)) == {
        "AWS_OIDC_ROLE_ARM": "AWS_OIDC_ROLE_ARN",
        "AWS_ROLE_SESION_NAME": "AWS_ROLE_SESSION_NAME",
        "AWS_ROLE_ARN": "AWS_OIDC_ROLE_ARN",
        "DRYRUN": "DRY_RUN",
        "BITBUCKET_ACESS_TOKEN": "BITBUCKET_ACCESS_TOKEN",
        "HTTPS_PROXI": "HTTPS_PROXY",
    }


def test_other_peoples_names_are_left_alone() -> None:
    names = [
        *spelling.BITBUCKET_OWN,
        "AWS_ENDPOINT_URL_S3",  # the SDK's per-service endpoint
        "TARGETS_0",
        "TARGETS_COUNT",
        "PATH",
        "HOME",
        "HOSTNAME",
        "PYTHON_VERSION",
        "LANG",
        "AWS_DEFAULT_REGION",
    ]
    assert spelling.candidates(names) == [] and spelling.suggestions(names) == []
