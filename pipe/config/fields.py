r"""The field validators: one variable's value (or a few that go together) to a typed value, or
an InputError naming the variable.

Every pattern here is ASCII-only: Python's ``\d`` and ``\w`` match any Unicode digit or letter
('١٢٣', 'é'), and ``str.isdigit`` accepts '²'; AWS and Bitbucket accept none of them. Numbers
are bounded in length before ``int()`` (Python refuses to convert more than 4300 digits), and
JSON values are bounded before they are parsed. Defaults come from the schema alone.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from pipe import oidc, regions
from pipe.console import shown
from pipe.errors import InputError
from pipe.schema import default, invalid
from pipe.sts import RoleArn
from pipe.targets import is_profile_name
from pipe.urls import check_api_url, is_loopback

# Anchored with \A...\Z ('$' accepts a trailing newline), re.ASCII (\d and \w are Unicode otherwise).
SESSION_NAME = re.compile(r"\A[\w+=,.@-]{2,64}\Z", re.ASCII)
ACCESS_KEY_ID = re.compile(r"\AAKIA[A-Z0-9]{16}\Z", re.ASCII)
TEMPORARY_KEY_ID = re.compile(r"\AASIA[A-Z0-9]{16}\Z", re.ASCII)
# sts:AssumeRole's ExternalId (botocore's model: 2-1224 characters of [\w+=,.@:/-]).
_EXTERNAL_ID = re.compile(r"\A[\w+=,.@:/-]{2,1224}\Z", re.ASCII)
# A managed policy: AWS's own (account "aws") or an account's, with an optional path.
_POLICY_ARN = re.compile(
    rf"\Aarn:({regions.PARTITION_NAME}):iam::(aws|\d{{12}}):policy/[\w+=,.@/-]{{1,1024}}\Z",
    re.ASCII,
)
MAX_POLICY_ARNS = 10  # AWS's limit on PolicyArns
MAX_REGION = 50  # longer than any region name; refused before any pattern runs
CREDENTIALS_MODES = ("session", "web-identity")
_ACCOUNT_ID = re.compile(r"\A\d{12}\Z", re.ASCII)
_NUMBER = re.compile(r"\A[0-9]{1,12}\Z", re.ASCII)
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}")
IAM_USER = re.compile(r"\A[\w+=,.@-]{1,64}\Z", re.ASCII)
# No variable needs more; longer values are refused before anything parses them.
MAX_VALUE = 65536
MAX_SESSION_POLICY = 2048  # characters of compact JSON: AWS's limit
_ENDPOINT_VARIABLES = {
    "sts": ("AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"),
    "iam": ("AWS_ENDPOINT_URL_IAM", "AWS_ENDPOINT_URL"),
    "secretsmanager": ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"),
    "ssm": ("AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL"),
    "organizations": ("AWS_ENDPOINT_URL_ORGANIZATIONS", "AWS_ENDPOINT_URL"),
    "sesv2": ("AWS_ENDPOINT_URL_SESV2", "AWS_ENDPOINT_URL"),
}


def boolean(values: Mapping[str, str | None], name: str) -> bool:
    raw = values.get(name)
    value = (raw or default(name)).strip()
    if not value.isascii() or value.lower() not in ("true", "false"):
        raise invalid(name, raw)
    return value.lower() == "true"


def integer(values: Mapping[str, str | None], name: str, low: int, high: int) -> int:
    """ASCII digits only ('²'.isdigit() is true), at most 12 of them before int()."""
    raw = values.get(name)
    text = (raw or default(name)).strip()
    if not _NUMBER.fullmatch(text) or not low <= int(text) <= high:
        raise invalid(name, raw)
    return int(text)


def partition_of(region: str) -> str:
    """The region's partition, from botocore's data (``pipe.regions``; ``region`` checks it has one)."""
    found = regions.partition_of(region)
    assert found is not None, "fields.region admits only a region of a partition"
    return found


def region(values: Mapping[str, str | None]) -> str:
    given = values.get("AWS_DEFAULT_REGION")
    other = values.get("AWS_REGION")
    if given and other and given != other:
        raise InputError(
            "AWS_DEFAULT_REGION",
            f"AWS_DEFAULT_REGION ({shown(given)}) and AWS_REGION ({shown(other)}) disagree",
            "Set one of them, or set both to the same region.",
        )
    chosen = given or other
    if not chosen:
        raise InputError(
            "AWS_DEFAULT_REGION",
            "AWS_DEFAULT_REGION is required",
            "Set AWS_DEFAULT_REGION (for example eu-west-1) in the pipe's variables.",
        )
    if len(chosen) > MAX_REGION or not chosen.isascii() or regions.partition_of(chosen) is None:
        raise invalid("AWS_DEFAULT_REGION" if given else "AWS_REGION", chosen)
    return chosen


def role(value: str, partition: str, name: str = "AWS_OIDC_ROLE_ARN") -> RoleArn:
    parsed = RoleArn.parse(value)
    if parsed is None:
        raise invalid(name, value)
    if parsed.partition != partition:
        raise InputError(
            name,
            f"{name} is in partition {parsed.partition} but the region is in {partition}",
            "Use a region of the role's partition in AWS_DEFAULT_REGION, or the right role ARN.",
        )
    return parsed


def external_id(values: Mapping[str, str], name: str) -> str | None:
    value = values.get(name)
    if value is not None and not _EXTERNAL_ID.match(value):
        raise invalid(name, value)
    return value


def policy_arns(values: Mapping[str, str], partition: str) -> tuple[str, ...]:
    """AWS_ROLE_SESSION_POLICY_ARNS: at most 10 managed policy ARNs of the region's partition,
    each once, in the order given."""
    name = "AWS_ROLE_SESSION_POLICY_ARNS"
    value = values.get(name)
    arns = [part for part in re.split(r"[\s,]+", value or "") if part]
    for arn in arns:
        match = _POLICY_ARN.match(arn)
        if not match:
            raise invalid(name, value, f"{shown(arn)} is not a managed policy ARN")
        if match.group(1) != partition:
            raise invalid(
                name, value, f"{shown(arn)} is in partition {match.group(1)}, the region in {partition}"
            )
    if len(arns) > MAX_POLICY_ARNS:
        raise invalid(name, None, f"{len(arns)} policies; AWS takes at most {MAX_POLICY_ARNS}")
    if len(set(arns)) != len(arns):
        raise invalid(name, None, "a policy is named twice")
    return tuple(arns)


def credentials_mode(values: Mapping[str, str]) -> str:
    raw = values.get("CREDENTIALS_MODE")
    mode = (raw or default("CREDENTIALS_MODE")).lower()
    if mode not in CREDENTIALS_MODES:
        raise invalid("CREDENTIALS_MODE", raw)
    return mode


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def session_policy(value: str | None) -> str | None:
    """The policy as compact JSON. Deep nesting (RecursionError), numbers of thousands of digits
    and NaN/Infinity (which json accepts and AWS does not) are input errors like any bad JSON."""
    if not value:
        return None
    name = "AWS_ROLE_SESSION_POLICY"
    try:
        document = json.loads(value, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise invalid(name, None, f"not JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise invalid(name, None, "not a policy (nested too deeply)") from None
    except ValueError as exc:
        raise invalid(name, None, f"not JSON ({str(exc).split(':')[0]})") from None
    if not isinstance(document, dict) or "Statement" not in document:
        raise invalid(name, None, "the JSON has no Statement")
    compact = json.dumps(document, separators=(",", ":"))
    if len(compact) > MAX_SESSION_POLICY:
        raise invalid(name, None, f"{len(compact)} characters; AWS allows {MAX_SESSION_POLICY}")
    return compact


def accounts(value: str | None) -> frozenset[str]:
    ids = [part for part in re.split(r"[\s,]+", value or "") if part]
    bad = [part for part in ids if not _ACCOUNT_ID.fullmatch(part)]
    if bad:
        raise invalid("ALLOWED_ACCOUNT_IDS", value, f"{shown(bad[0])} is not a 12-digit account id")
    return frozenset(ids)


def profile_name(values: Mapping[str, str]) -> str:
    profile = values.get("AWS_PROFILE_NAME") or default("AWS_PROFILE_NAME")
    if not is_profile_name(profile):
        raise invalid("AWS_PROFILE_NAME", profile)
    return profile


def session_name(values: Mapping[str, str], now: float) -> str:
    given = values.get("AWS_ROLE_SESSION_NAME")
    if given is not None and not SESSION_NAME.match(given):
        raise invalid("AWS_ROLE_SESSION_NAME", given)
    return given or default_session_name(
        values.get("BITBUCKET_REPO_SLUG"),
        values.get("BITBUCKET_BUILD_NUMBER"),
        now,
        values.get("BITBUCKET_STEP_UUID"),
    )


_NOT_IN_SESSION_NAME = re.compile(r"[^\w+=,.@-]+", re.ASCII)
MAX_SESSION_NAME = 64  # sts:AssumeRole*'s RoleSessionName: 2-64 characters of [\w+=,.@-]
_STEP_ID = 36  # a step's UUID without its braces


def _clean(text: str) -> str:
    """Runs of characters STS refuses in a session name become one "-"."""
    return re.sub(r"-{2,}", "-", _NOT_IN_SESSION_NAME.sub("-", text))


def default_session_name(
    repo_slug: str | None, build_number: str | None, now: float, step_uuid: str | None = None
) -> str:
    """``bitbucket-<repo slug>-<build number>-<step>``: the step is BITBUCKET_STEP_UUID without
    its braces, kept whole so that CloudTrail tells the steps of one build apart; the repository
    slug is shortened when the whole would pass STS's 64 characters. Outside Pipelines (no build
    number, no step) the build number is the time."""
    slug = _clean(repo_slug or "local")
    build = _clean(build_number or str(int(now)))[:12]
    step = _clean((step_uuid or "").strip().strip("{}")).strip("-")[:_STEP_ID]
    tail = f"-{build}-{step}" if step else f"-{build}"
    room = MAX_SESSION_NAME - len("bitbucket-") - len(tail)
    name = f"bitbucket-{slug[: max(room, 1)].rstrip('-') or 'r'}{tail}"
    return _clean(name)[:MAX_SESSION_NAME]


def endpoints(values: Mapping[str, str | None]) -> dict[str, str]:
    """The endpoint overrides (the SDK's AWS_ENDPOINT_URL_<SERVICE>, then AWS_ENDPOINT_URL).
    Every call carries a credential (the step's OIDC token to STS, a session token to every
    service), so an endpoint is https, or plain http to this machine only (a stand-in), as
    BITBUCKET_API_URL is (issue 15, item 15)."""
    found: dict[str, str] = {}
    for service, names in _ENDPOINT_VARIABLES.items():
        for name in names:
            url = values.get(name)
            if not url:
                continue
            check_url(name, url)
            parts = urlparse(url)
            if parts.scheme == "http" and not is_loopback(parts.hostname):
                raise invalid(
                    name,
                    None,
                    f"it uses plain http to {parts.hostname}: the step's token and the session tokens "
                    "would cross the network in clear text; use https (plain http only to this machine)",
                )
            found.setdefault(service, url)
    return found


def endpoint_warnings(values: Mapping[str, str | None]) -> list[str]:
    """AWS_ENDPOINT_URL covers STS too when AWS_ENDPOINT_URL_STS is not set: the step's OIDC
    token goes there. Said out loud unless it is this machine (a stand-in)."""
    url = values.get("AWS_ENDPOINT_URL")
    if not url or values.get("AWS_ENDPOINT_URL_STS"):
        return []
    parts = urlparse(url)
    if is_loopback(parts.hostname):
        return []
    return [
        f"AWS_ENDPOINT_URL also sends STS's calls (the step's OIDC token among them) to {parts.scheme}://"
        f"{parts.hostname}: set AWS_ENDPOINT_URL_STS to STS's own endpoint, or to the same URL if that is meant."
    ]


def check_url(name: str, url: str) -> None:
    """An http(s) URL with a host, in printable ASCII (urlparse raises ValueError on a broken
    IPv6 host, and accepts spaces and Unicode digits in host names)."""
    if not url.isascii() or not url.isprintable() or " " in url:
        raise invalid(name, url)
    try:
        parsed = urlparse(url)
        host = parsed.hostname
    except ValueError:
        raise invalid(name, url) from None
    if parsed.scheme not in ("http", "https") or not host:
        raise invalid(name, url)


def bitbucket_url(values: Mapping[str, str]) -> str:
    url = values.get("BITBUCKET_API_URL") or default("BITBUCKET_API_URL")
    check_url("BITBUCKET_API_URL", url)
    if problem := check_api_url(url):
        raise invalid("BITBUCKET_API_URL", url, problem)
    return url.rstrip("/")


def host(values: Mapping[str, str], name: str) -> str:
    text = values.get(name) or default(name)
    if not _HOST.fullmatch(text):
        raise invalid(name, text)
    return text


def path(values: Mapping[str, str | None], name: str, fallback: Path, cwd: Path) -> Path:
    raw = values.get(name)
    if not raw:
        return fallback
    if "\0" in raw:
        raise invalid(name, raw)
    given = Path(raw)
    return given if given.is_absolute() else cwd / given


def canonical(path: Path, clone_dir: Path) -> Path:
    """Where a file or directory the pipe writes really is, with only the symlinks nobody in
    the repository controls resolved (pipe.files refuses any symlink left in a path):

    - inside the clone directory, the clone directory's own location is resolved (it may sit
      under a symlinked /tmp, for instance) and the part inside it is kept as written, so a
      committed `.bitbucket -> ../elsewhere` stays in the path and is refused;
    - outside it, the parent directories are resolved (they belong to the system, or to whoever
      set the variable) and only the last component is kept: it must not be a symlink.

    '.' and '..' are removed lexically first: nothing is followed to interpret them."""
    path = Path(os.path.normpath(path))
    clone = Path(os.path.normpath(clone_dir))
    if path == clone or clone in path.parents:
        return Path(os.path.realpath(clone)) / path.relative_to(clone)
    return Path(os.path.realpath(path.parent)) / path.name


def token(values: Mapping[str, str]) -> str | None:
    found = values.get(oidc.TOKEN_VARIABLE)
    if found and not found.isascii():  # undecodable bytes would stop the JWT library
        raise InputError(
            oidc.TOKEN_VARIABLE,
            "BITBUCKET_STEP_OIDC_TOKEN is not a JWT (it holds characters a JWT never has)",
            "Run the pipe in a step with `oidc: true`, and do not set BITBUCKET_STEP_OIDC_TOKEN yourself.",
        )
    return found
