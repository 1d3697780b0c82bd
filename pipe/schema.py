"""The pipe's variables: names, defaults, allowed values. One source of truth.

The toolkit's Cerberus schema is derived from this list; ``pipe.yml`` and the README's
variables table are held against it by ``tests/unit/test_schema_docs.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIONS = ("assume", "check", "rotate", "sync", "audit")
IMPLEMENTED_ACTIONS = ("assume",)

_BOOL = r"(?i)(true|false)?"
_INT = r"\s*[0-9]*\s*"


@dataclass(frozen=True)
class Variable:
    name: str
    description: str
    default: str = ""  # as documented; "" means no default
    pattern: str = ""  # Cerberus first pass (full match); config.py checks the rest
    expects: str = ""  # what a valid value looks like, for the ✖ line
    secret: bool = False  # never echoed, masked in every output
    user: bool = True  # False: Bitbucket's own variables, read from the step, not set by users


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "ACTION",
        "What to do: `assume` (this release); `check`, `rotate`, `sync` and `audit` are planned.",
        default="assume",
        pattern=r"(?i)(" + "|".join(ACTIONS) + r")?",
        expects="one of " + ", ".join(ACTIONS),
    ),
    Variable(
        "AWS_DEFAULT_REGION",
        "Region of the regional STS endpoint; written to the outputs. Required (or `AWS_REGION`).",
        expects="an AWS region such as eu-west-1",
    ),
    Variable("AWS_REGION", "Accepted in place of `AWS_DEFAULT_REGION`; if both are set they must agree."),
    Variable(
        "AWS_OIDC_ROLE_ARN",
        "Role to assume with the step's OIDC token (`AssumeRoleWithWebIdentity`).",
        expects="a role ARN such as arn:aws:iam::123456789012:role/deploy",
    ),
    Variable(
        "AWS_ROLE_SESSION_NAME",
        "Session name. Default `bitbucket-<repo slug>-<build number>`, cleaned to `[\\w+=,.@-]`, 2-64 "
        "characters. A value you give that breaks AWS's rule is an error, not silently changed.",
        default="bitbucket-<repo slug>-<build number>",
        expects="2 to 64 characters of letters, digits and + = , . @ _ -",
    ),
    Variable(
        "AWS_ROLE_DURATION_SECONDS",
        "Session duration, 900-43200; the role's MaxSessionDuration must allow it.",
        default="3600",
        pattern=_INT,
        expects="a whole number from 900 to 43200",
    ),
    Variable(
        "AWS_ROLE_SESSION_POLICY",
        "Inline session policy (JSON text) that narrows the role's permissions for this session.",
        expects="a JSON policy document (an object with a Statement)",
    ),
    Variable(
        "ALLOWED_ACCOUNT_IDS",
        "12-digit account ids, comma or space separated; the identity must be in one of them.",
        expects="12-digit account ids separated by commas or spaces",
    ),
    Variable(
        "AWS_ACCESS_KEY_ID",
        "Fallback access key id: used only when no OIDC token or role is given, with a warning.",
        expects="an access key id such as AKIA followed by 16 letters or digits",
    ),
    Variable(
        "AWS_SECRET_ACCESS_KEY",
        "Fallback secret access key (goes with `AWS_ACCESS_KEY_ID`).",
        secret=True,
        expects="the 40-character secret of AWS_ACCESS_KEY_ID",
    ),
    Variable(
        "REQUIRE_OIDC",
        "`true`: never fall back to the access key.",
        default="false",
        pattern=_BOOL,
        expects="true or false",
    ),
    Variable(
        "AWS_PROFILE_NAME",
        "Profile name in the written `credentials` and `config` files.",
        default="default",
        expects="letters, digits and + = , . @ _ - (no spaces)",
    ),
    Variable(
        "CREDENTIALS_DIR",
        "Where credentials are written (directory 0700, files 0600, symlinks refused).",
        default="$BITBUCKET_PIPE_SHARED_STORAGE_DIR/aws-credentials",
        expects="a directory path",
    ),
    Variable(
        "REPORT_DIR",
        "Where reports are written (never secrets). `assume` writes none.",
        default="<clone dir>/aws-credentials-reports",
        expects="a directory path",
    ),
    Variable(
        "DRY_RUN",
        "`true`: get and verify the credentials, print what would be written, write nothing.",
        default="false",
        pattern=_BOOL,
        expects="true or false",
    ),
    Variable("DEBUG", "More detail, never secrets.", default="false", pattern=_BOOL, expects="true or false"),
    Variable(
        "RETRY_TIMEOUT_SECONDS",
        "Total time for retrying transient AWS failures (IDPCommunicationError, 5xx, connection "
        "errors); `0` disables the pipe's own retries. Throttling is left to the SDK's retry mode.",
        default="60",
        pattern=_INT,
        expects="a whole number of seconds from 0 to 900",
    ),
    Variable(
        "AWS_ENDPOINT_URL",
        "The SDK's standard endpoint override for every service.",
        expects="an http(s) URL",
    ),
    Variable(
        "AWS_ENDPOINT_URL_STS",
        "The SDK's standard endpoint override for STS (wins over `AWS_ENDPOINT_URL`).",
        expects="an http(s) URL",
    ),
    # Bitbucket's own variables: read from the step, never set by users.
    Variable("BITBUCKET_STEP_OIDC_TOKEN", "The step's OIDC token (`oidc: true`).", secret=True, user=False),
    Variable("BITBUCKET_REPO_SLUG", "Repository slug, for the default session name.", user=False),
    Variable("BITBUCKET_BUILD_NUMBER", "Build number, for the default session name.", user=False),
    Variable("BITBUCKET_CLONE_DIR", "The clone directory.", user=False),
    Variable("BITBUCKET_PIPE_SHARED_STORAGE_DIR", "Storage shared by the step's pipes.", user=False),
)

BY_NAME: dict[str, Variable] = {v.name: v for v in VARIABLES}
USER_VARIABLES: tuple[Variable, ...] = tuple(v for v in VARIABLES if v.user)
SECRET_NAMES: tuple[str, ...] = tuple(v.name for v in VARIABLES if v.secret)


def toolkit_schema() -> dict[str, dict[str, object]]:
    """The Cerberus schema handed to bitbucket-pipes-toolkit's ``Pipe``.

    Every value is a string (the toolkit would YAML-parse other types: ``0123...`` account
    ids would turn into octal numbers), checked by pattern where one applies.
    """
    schema: dict[str, dict[str, object]] = {}
    for var in VARIABLES:
        rule: dict[str, object] = {"type": "string", "required": False, "nullable": True}
        if var.pattern:
            rule["regex"] = var.pattern
        schema[var.name] = rule
    return schema
