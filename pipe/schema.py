"""The pipe's variables: names, defaults, allowed values. One source of truth, and the only
place a default is written down (the code reads them with ``default``).

``first_pass`` is the first of the two steps of the one validation path (the second is
``pipe.config``); ``pipe.yml`` and the docs' variables table are held against this list by
``tests/unit/test_schema_docs.py``.
"""

# Over 300 lines: one entry per variable, with the text the docs show; nothing else lives here.

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from pipe.console import shown
from pipe.errors import InputError

ACTIONS = ("assume", "check", "rotate", "sync", "audit")
IMPLEMENTED_ACTIONS = ACTIONS

# The parts of the defaults that are places: CREDENTIALS_DIR and REPORT_DIR, and STORE's SSM
# parameter (SSM reserves names whose first segment starts with "aws").
SHARED_STORAGE_SUFFIX = ".bitbucket/pipelines/generated/pipeline/pipes"
CREDENTIALS_SUBDIR = "aws-credentials"
REPORTS_SUBDIR = "aws-credentials-reports"
DEFAULT_STORE_PREFIX = "/bitbucket-pipes/aws-credentials-pipe/"

_BOOL = r"(?i)(true|false)?"
_INT = r"\s*[0-9]*\s*"


@dataclass(frozen=True)
class Variable:
    """One of the pipe's variables, as pipe.yml and the README document it."""

    name: str
    description: str
    default: str = ""  # as documented; "" means no default
    pattern: str = ""  # the first pass (``first_pass``); pipe.config checks the rest
    expects: str = ""  # what a valid value looks like, for the ✖ line
    secret: bool = False  # never echoed, masked in every output
    user: bool = True  # False: Bitbucket's or the environment's own variables, not the pipe's
    actions: tuple[str, ...] = ACTIONS  # the actions that read it (the docs list it under each)
    # The runner's environment (proxies): not a pipe variable (not in pipe.yml or the variables
    # table), named in the README, and passed like any variable when a step needs it.
    environment: bool = False


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "ACTION",
        "What to do: `assume`, `check`, `rotate`, `sync` or `audit`.",
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
        "Session name. Default `bitbucket-<repo slug>-<build number>-<step uuid>` (the step's UUID "
        "without braces, kept whole; a long slug is shortened), cleaned to `[\\w+=,.@-]`, at most 64 "
        "characters. A value you give that breaks AWS's rule is an error, not silently changed.",
        default="bitbucket-<repo slug>-<build number>-<step uuid>",
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
        actions=("assume",),
    ),
    Variable(
        "CREDENTIALS_DIR",
        "Where credentials are written (directory 0700, files 0600, symlinks refused).",
        default=f"$BITBUCKET_PIPE_SHARED_STORAGE_DIR/{CREDENTIALS_SUBDIR}",
        expects="a directory path",
        actions=("assume",),
    ),
    # The assume block (issue 11): what configure-aws-credentials users rely on.
    Variable(
        "CREDENTIALS_MODE",
        "`session`: hand on the verified session (static keys that expire). `web-identity`: also write "
        "the step's token to a file and hand on a profile (and `credentials.env` variables) with which "
        "the SDK assumes the role itself and refreshes the session for as long as the token is valid.",
        default="session",
        pattern=r"(?i)(session|web-identity)?",
        expects="session or web-identity",
        actions=("assume",),
    ),
    Variable(
        "AWS_CHAINED_ROLE_ARN",
        "A second role, assumed with `sts:AssumeRole` by the first one (role chaining; it may be in "
        "another account). The identity check and `ALLOWED_ACCOUNT_IDS` apply to it; AWS caps its "
        "session at 1 hour.",
        expects="a role ARN such as arn:aws:iam::210987654321:role/deploy",
        actions=("assume",),
    ),
    Variable(
        "AWS_CHAINED_EXTERNAL_ID",
        "The external id the trust policy of `AWS_CHAINED_ROLE_ARN` asks for (`sts:ExternalId`).",
        expects="2 to 1224 characters of letters, digits and + = , . @ : / _ -",
        actions=("assume",),
    ),
    Variable(
        "AWS_ROLE_ARN_FOR_KEYS",
        "With the fallback key (no OIDC): the role the key assumes with `sts:AssumeRole`, instead of "
        "handing the key itself on.",
        expects="a role ARN such as arn:aws:iam::123456789012:role/deploy",
        actions=("assume",),
    ),
    Variable(
        "AWS_EXTERNAL_ID_FOR_KEYS",
        "The external id the trust policy of `AWS_ROLE_ARN_FOR_KEYS` asks for (`sts:ExternalId`).",
        expects="2 to 1224 characters of letters, digits and + = , . @ : / _ -",
        actions=("assume",),
    ),
    Variable(
        "AWS_SESSION_TOKEN",
        "With a temporary fallback key (`ASIA...`): its session token.",
        secret=True,
        expects="the session token of the temporary key in AWS_ACCESS_KEY_ID",
        actions=("assume",),
    ),
    Variable(
        "AWS_ROLE_SESSION_POLICY_ARNS",
        "Managed policies (up to 10 ARNs, comma or space separated) that narrow the session, sent as "
        "`PolicyArns`.",
        expects="at most 10 IAM policy ARNs such as arn:aws:iam::aws:policy/ReadOnlyAccess",
        actions=("assume",),
    ),
    Variable(
        "MASK_ACCOUNT_ID",
        "`true`: every line the pipe prints shows `************` for 12-digit account ids; the files "
        "keep them.",
        default="false",
        pattern=_BOOL,
        expects="true or false",
    ),
    Variable(
        "AWS_CA_BUNDLE",
        "The SDK's standard CA bundle (a PEM file): the certificates every AWS and Bitbucket call "
        "trusts, for a TLS-inspecting proxy.",
        expects="a path to a PEM file of CA certificates",
    ),
    Variable(
        "HTTPS_PROXY",
        "The proxy for https URLs (every AWS and Bitbucket call).",
        expects="a proxy URL such as http://proxy.internal:3128",
        user=False,
        environment=True,
    ),
    Variable(
        "https_proxy",
        "Accepted for `HTTPS_PROXY`; if both are set they must agree.",
        expects="a proxy URL such as http://proxy.internal:3128",
        user=False,
        environment=True,
    ),
    Variable(
        "HTTP_PROXY",
        "The proxy for http URLs.",
        expects="a proxy URL such as http://proxy.internal:3128",
        user=False,
        environment=True,
    ),
    Variable(
        "http_proxy",
        "Accepted for `HTTP_PROXY`; if both are set they must agree.",
        expects="a proxy URL such as http://proxy.internal:3128",
        user=False,
        environment=True,
    ),
    Variable(
        "NO_PROXY",
        "Hosts reached directly: comma separated names (a name covers its subdomains), `host:port`, "
        "IP addresses or CIDR ranges, or `*`.",
        expects="hosts separated by commas, such as localhost,169.254.169.254,.internal",
        user=False,
        environment=True,
    ),
    Variable(
        "no_proxy",
        "Accepted for `NO_PROXY`; if both are set they must agree.",
        expects="hosts separated by commas, such as localhost,169.254.169.254,.internal",
        user=False,
        environment=True,
    ),
    Variable(
        "REPORT_DIR",
        "Where reports are written (never secrets). `assume` writes none.",
        default=f"<clone dir>/{REPORTS_SUBDIR}",
        expects="a directory path",
        actions=("check", "rotate", "sync", "audit"),
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
        "How long AssumeRoleWithWebIdentity goes on retrying `IDPCommunicationError` (AWS could not "
        "reach the issuer) after the SDK's 3 attempts; `0`: no retries past the SDK's. Throttling, 5xx "
        "and connection errors get the SDK's 3 attempts (standard retry mode) whatever this is.",
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
    Variable(
        "AWS_ENDPOINT_URL_IAM",
        "The SDK's standard endpoint override for IAM (check, rotate, audit).",
        expects="an http(s) URL",
        actions=("check", "rotate", "audit"),
    ),
    Variable(
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "The SDK's standard endpoint override for Secrets Manager (rotate, sync, audit).",
        expects="an http(s) URL",
        actions=("rotate", "sync", "audit"),
    ),
    Variable(
        "AWS_ENDPOINT_URL_SSM",
        "The SDK's standard endpoint override for SSM Parameter Store (rotate, sync).",
        expects="an http(s) URL",
        actions=("rotate", "sync"),
    ),
    Variable(
        "CHECK_SCOPE",
        "check: `repository`, can this repository drop its static keys; `workspace`, the migration "
        "report of every repository of `BITBUCKET_WORKSPACE` (reads only; needs Bitbucket access).",
        default="repository",
        pattern=r"(?i)(repository|workspace)?",
        expects="repository or workspace",
        actions=("check",),
    ),
    Variable(
        "TRUST_POLICY_FILE",
        "check: the role's trust policy as a JSON file in the repository, read when iam:GetRole is denied.",
        expects="a path to a JSON file",
        actions=("check",),
    ),
    Variable(
        "LEGACY_IDLE_DAYS",
        "check: a legacy key unused for this many days (since its last use, or its creation when never "
        "used) counts as idle (and may be retired).",
        default="7",
        pattern=_INT,
        expects="a whole number of days from 1 to 365",
        actions=("check",),
    ),
    Variable(
        "RETIRE_LEGACY_KEYS",
        "check: `true` retires idle legacy keys when the verdict is READY: deletes their variables, "
        "then deactivates the key. Never a key in a workspace variable, nor one ACTION=rotate manages. "
        "Honours DRY_RUN.",
        default="false",
        pattern=_BOOL,
        expects="true or false",
        actions=("check",),
    ),
    Variable(
        "BITBUCKET_AUTH_PROXY_HOST",
        "check, audit: where the Pipelines auth proxy answers, for the Code Insights report "
        "(`localhost` when the pipe's code runs in the step itself rather than as a pipe).",
        default="host.docker.internal",
        expects="a host name",
        actions=("check", "audit"),
    ),
    Variable(
        "IAM_USER_NAME",
        "rotate: the IAM user whose access key is rotated. Default: the user of the fallback key "
        "(the self-service case).",
        expects="an IAM user name",
        actions=("rotate",),
    ),
    Variable(
        "TARGETS",
        "rotate, sync: where the key is published, comma or space separated or a YAML list: "
        "`<workspace>/<repo>`, `<workspace>/<repo>@<environment>`, `<workspace>`, "
        "`secretsmanager:<id or ARN>`, `ssm:<parameter>`, `profile:<name>`.",
        default="<this repository>",
        expects="targets such as acme/shop, acme/shop@production, acme, secretsmanager:ci/key, ssm:/ci/key, profile:default",
        actions=("rotate", "sync"),
    ),
    Variable(
        "SOURCE",
        "sync: the store that holds the current key (`secretsmanager:...` or `ssm:...`).",
        expects="secretsmanager:<id or ARN> or ssm:<parameter name>",
        actions=("sync",),
    ),
    Variable(
        "STORE",
        "rotate: the durable store that keeps a new key while it is published, so an interrupted "
        "rotation can resume. Default: the first `secretsmanager:` or `ssm:` target, else the SSM "
        f"SecureString `{DEFAULT_STORE_PREFIX}<IAM user>`; `none` opts out (warned); or "
        "`ssm:<parameter>` / `secretsmanager:<id or ARN>`.",
        default=f"<first store target, else ssm:{DEFAULT_STORE_PREFIX}<IAM user>>",
        expects="none, ssm:<parameter name> or secretsmanager:<id or ARN>",
        actions=("rotate",),
    ),
    Variable(
        "STORE_KMS_KEY_ID",
        "rotate, sync: the customer-managed KMS key that encrypts the SSM SecureString parameters "
        "the run writes (an `ssm:` store or target), sent as PutParameter's `KeyId` on every "
        "write: a key id, key ARN, `alias/<name>` or alias ARN. Unset: `aws/ssm`, also for a "
        "parameter encrypted with another key before (SSM re-encrypts it on the next write). "
        "A `secretsmanager:` store keeps the key it was created with.",
        pattern=r"([a-zA-Z0-9:/_-]{1,256})?",  # PutParameter's KeyId (botocore's ssm model)
        expects="a KMS key id, key ARN, alias/<name> or alias ARN",
        actions=("rotate", "sync"),
    ),
    Variable(
        "ACCESS_KEY_ID_VARIABLE",
        "rotate, sync: the Bitbucket variable that holds the key id (written unsecured, so it can be read back).",
        default="AWS_ACCESS_KEY_ID",
        pattern=r"([A-Za-z_][A-Za-z0-9_]*)?",
        expects="a variable name (letters, digits, _)",
        actions=("rotate", "sync"),
    ),
    Variable(
        "SECRET_ACCESS_KEY_VARIABLE",
        "rotate, sync: the Bitbucket variable that holds the secret (always written secured).",
        default="AWS_SECRET_ACCESS_KEY",
        pattern=r"([A-Za-z_][A-Za-z0-9_]*)?",
        expects="a variable name (letters, digits, _)",
        actions=("rotate", "sync"),
    ),
    Variable(
        "ROTATE_AFTER_DAYS",
        "rotate, audit: create a new key once the current one is this old.",
        default="90",
        pattern=_INT,
        expects="a whole number of days from 1 to 3650",
        actions=("rotate", "audit"),
    ),
    Variable(
        "DEACTIVATE_AFTER_DAYS",
        "rotate: deactivate a previous key this old, if unused since the current key was created; audit: "
        "deactivate any active key this old.",
        default="100",
        pattern=_INT,
        expects="a whole number of days, more than ROTATE_AFTER_DAYS",
        actions=("rotate", "audit"),
    ),
    Variable(
        "DELETE_AFTER_DAYS",
        "rotate: delete an inactive previous key this old; audit: delete an inactive key this old once it "
        "has been inactive for DELETE_AFTER_DAYS - DEACTIVATE_AFTER_DAYS days.",
        default="110",
        pattern=_INT,
        expects="a whole number of days, more than DEACTIVATE_AFTER_DAYS",
        actions=("rotate", "audit"),
    ),
    Variable(
        "ROTATION_GRACE_DAYS",
        "rotate: a previous key is deactivated only once the current key is at least this many days "
        "old (IAM's last-used date lags by hours, and running pipelines still hold the previous key); "
        "never in the run that rotates. 1-365.",
        default="7",
        pattern=_INT,
        expects="a whole number of days from 1 to 365",
        actions=("rotate",),
    ),
    Variable(
        "FORCE_ROTATE",
        "rotate: `true` rotates now, whatever the key's age.",
        default="false",
        pattern=_BOOL,
        expects="true or false",
        actions=("rotate",),
    ),
    Variable(
        "KEEP_OLD_KEY",
        "rotate, self-service (the run's own key into `profile:` targets): `true` keeps the old key; "
        "by default it is deleted once the new key works and every target holds it.",
        default="false",
        pattern=_BOOL,
        expects="true or false",
        actions=("rotate",),
    ),
    Variable(
        "VERIFY_TIMEOUT_SECONDS",
        "rotate: how long a new key may take to work (IAM is eventually consistent); it must pass "
        "GetCallerIdentity 3 times in a row within this time.",
        default="120",
        pattern=_INT,
        expects="a whole number of seconds from 5 to 900",
        actions=("rotate",),
    ),
    Variable(
        "ROTATION_LEASE_SECONDS",
        "rotate, sync: a rotation whose pending marker has not been refreshed for this long is taken "
        "for dead, and a re-run resumes or cleans up after it; a fresher one makes other runs (and sync) "
        "stop cleanly. A running rotation refreshes it every third of this time. 30-3600.",
        default="300",
        pattern=_INT,
        expects="a whole number of seconds from 30 to 3600",
        actions=("rotate", "sync"),
    ),
    Variable(
        "PUBLISH_CONCURRENCY",
        "rotate, sync: how many targets are read and written at once (each target's two variables are "
        "written one after the other).",
        default="16",
        pattern=_INT,
        expects="a whole number from 1 to 32",
        actions=("rotate", "sync"),
    ),
    Variable(
        "AWS_SHARED_CREDENTIALS_FILE",
        "rotate, sync: the shared credentials file that `profile:` targets write.",
        default="~/.aws/credentials",
        expects="a file path",
        actions=("rotate", "sync"),
    ),
    Variable(
        "IAM_USERS",
        "audit: the IAM users to audit, comma or space separated or a YAML list. With `IAM_GROUPS`, their "
        "members are added. Neither: every IAM user of each account.",
        expects="IAM user names separated by commas or spaces",
        actions=("audit",),
    ),
    Variable(
        "IAM_GROUPS",
        "audit: audit the members of these IAM groups (comma or space separated or a YAML list).",
        expects="IAM group names separated by commas or spaces",
        actions=("audit",),
    ),
    Variable(
        "EXEMPT_GROUP",
        "audit: members of this IAM group are never changed (reported `exempt`). An account without "
        "the group is an error: nothing is changed there.",
        expects="an IAM group name",
        actions=("audit",),
    ),
    Variable(
        "AUDIT_MODE",
        "audit: `report` reads only; `enforce` applies the age policy (new key at `ROTATE_AFTER_DAYS`, "
        "deactivate at `DEACTIVATE_AFTER_DAYS`, delete at `DELETE_AFTER_DAYS`); `revoke` deactivates, then "
        "on a later run deletes, every key of the selected users (needs `IAM_USERS` or `IAM_GROUPS`).",
        default="report",
        pattern=r"(?i)(report|enforce|revoke)?",
        expects="report, enforce or revoke",
        actions=("audit",),
    ),
    Variable(
        "AUDIT_ACCOUNT_IDS",
        "audit: 12-digit account ids (comma or space separated), or `organization` for every ACTIVE "
        "account of the AWS Organization. Default: the account of the pipe's credentials.",
        default="<the pipe's own account>",
        expects="12-digit account ids separated by commas or spaces, or organization",
        actions=("audit",),
    ),
    Variable(
        "AUDIT_ROLE_NAME",
        "audit: the role the pipe assumes (`sts:AssumeRole`) in every audited account other than its own.",
        default="aws-credentials-audit",
        expects="an IAM role name (with its path, if any), such as aws-credentials-audit",
        actions=("audit",),
    ),
    Variable(
        "AUDIT_EXTERNAL_ID",
        "audit: the external id `AUDIT_ROLE_NAME`'s trust policy requires (`sts:ExternalId`). Never printed.",
        expects="2 to 1224 characters of letters, digits and + = , . @ : / _ -",
        secret=True,
        actions=("audit",),
    ),
    Variable(
        "AUDIT_CONCURRENCY",
        "audit: how many accounts are audited at once. 1-32.",
        default="8",
        pattern=_INT,
        expects="a whole number from 1 to 32",
        actions=("audit",),
    ),
    Variable(
        "AUDIT_SECRET_PREFIX",
        "audit: a new key goes to the Secrets Manager secret `<prefix><user name>` in the user's account "
        "and `AWS_DEFAULT_REGION`, which only that user may read.",
        default="aws-credentials/",
        expects="letters, digits and / _ + = . @ - (a Secrets Manager name prefix)",
        actions=("audit",),
    ),
    Variable(
        "NOTIFY_FROM",
        "audit: the SES-verified sender of the e-mails. Unset: no e-mail is sent.",
        expects="an e-mail address such as it-security@example.com",
        actions=("audit",),
    ),
    Variable(
        "NOTIFY_BEFORE_DAYS",
        "audit: a user whose active key will be deactivated within this many days is warned (once per "
        "key); 0: no warning. 0-365.",
        default="7",
        pattern=_INT,
        expects="a whole number of days from 0 to 365",
        actions=("audit",),
    ),
    Variable(
        "EMAIL_TAG",
        "audit: the IAM user tag that holds the user's e-mail address.",
        default="email",
        expects="an IAM tag key",
        actions=("audit",),
    ),
    Variable(
        "NOTIFY_ADMINS",
        "audit: e-mail addresses (comma or space separated) that get one summary per run, when the run "
        "changed something or failed. Needs `NOTIFY_FROM`.",
        expects="e-mail addresses separated by commas or spaces",
        actions=("audit",),
    ),
    Variable(
        "SES_REGION",
        "audit: the region of SES (SES v2 `SendEmail`), where `NOTIFY_FROM` is verified.",
        default="<AWS_DEFAULT_REGION>",
        expects="an AWS region such as eu-west-1",
        actions=("audit",),
    ),
    Variable(
        "AWS_ENDPOINT_URL_ORGANIZATIONS",
        "The SDK's standard endpoint override for AWS Organizations (audit).",
        expects="an http(s) URL",
        actions=("audit",),
    ),
    Variable(
        "AWS_ENDPOINT_URL_SESV2",
        "The SDK's standard endpoint override for SES v2 (audit).",
        expects="an http(s) URL",
        actions=("audit",),
    ),
    Variable(
        "BITBUCKET_ACCESS_TOKEN",
        "Repository, project or workspace access token for Bitbucket's API (sent as Bearer); scopes "
        "`pipeline` and `pipeline:variable`.",
        secret=True,
        actions=("check", "rotate", "sync"),
    ),
    Variable(
        "ATLASSIAN_ACCOUNT_EMAIL",
        "With `ATLASSIAN_API_TOKEN`: an API token's Atlassian account (Basic auth).",
        actions=("check", "rotate", "sync"),
    ),
    Variable(
        "ATLASSIAN_API_TOKEN",
        "API token (scopes `read:pipeline:bitbucket` and `admin:pipeline:bitbucket`).",
        secret=True,
        actions=("check", "rotate", "sync"),
    ),
    Variable(
        "BITBUCKET_USERNAME",
        "Deprecated: with `BITBUCKET_APP_PASSWORD` (warned).",
        actions=("check", "rotate", "sync"),
    ),
    Variable(
        "BITBUCKET_APP_PASSWORD",
        "Deprecated app password (warned).",
        secret=True,
        actions=("check", "rotate", "sync"),
    ),
    Variable(
        "BITBUCKET_API_URL",
        "Bitbucket's API.",
        default="https://api.bitbucket.org/2.0",
        expects="an http(s) URL",
        actions=("check", "rotate", "sync"),
    ),
    # Bitbucket's own variables: read from the step, never set by users.
    Variable("BITBUCKET_STEP_OIDC_TOKEN", "The step's OIDC token (`oidc: true`).", secret=True, user=False),
    Variable("BITBUCKET_REPO_SLUG", "Repository slug, for the default session name.", user=False),
    Variable("BITBUCKET_BUILD_NUMBER", "Build number, for the default session name.", user=False),
    Variable("BITBUCKET_STEP_UUID", "The step's UUID, for the default session name.", user=False),
    Variable("BITBUCKET_CLONE_DIR", "The clone directory.", user=False),
    Variable("BITBUCKET_PIPE_SHARED_STORAGE_DIR", "Storage shared by the step's pipes.", user=False),
    Variable(
        "BITBUCKET_WORKSPACE", "The workspace, for the default TARGETS and CHECK_SCOPE=workspace.", user=False
    ),
    Variable("HOME", "The home directory, for the default shared credentials file.", user=False),
    Variable("BITBUCKET_COMMIT", "The commit a check's Code Insights report is posted on.", user=False),
    Variable(
        "CI",
        "`true` in a Pipelines step: only then do the check and the audit post their Code Insights report "
        "(through the auth proxy).",
        user=False,
        actions=("check", "audit"),
    ),
)

BY_NAME: dict[str, Variable] = {v.name: v for v in VARIABLES}
# The ways to give Bitbucket API access (bitbucket-pipes-toolkit's three).
BITBUCKET_AUTH = (
    "BITBUCKET_ACCESS_TOKEN",
    "ATLASSIAN_ACCOUNT_EMAIL",
    "ATLASSIAN_API_TOKEN",
    "BITBUCKET_USERNAME",
    "BITBUCKET_APP_PASSWORD",
)
USER_VARIABLES: tuple[Variable, ...] = tuple(v for v in VARIABLES if v.user)
ENVIRONMENT_VARIABLES: tuple[Variable, ...] = tuple(v for v in VARIABLES if v.environment)
PROXY_NAMES: tuple[str, ...] = tuple(v.name for v in ENVIRONMENT_VARIABLES)
SECRET_NAMES: tuple[str, ...] = tuple(v.name for v in VARIABLES if v.secret)


def default(name: str) -> str:
    """The documented default of a variable ("" when it has none)."""
    return BY_NAME[name].default


def invalid(name: str, value: str | None = None, extra: str = "") -> InputError:
    """The ✖ for a bad value of ``name``, from what the variable expects. The value is echoed to
    help, unless it is a secret variable's or merely looks like a secret (console.looks_secret:
    a secret pasted into the wrong variable)."""
    var = BY_NAME[name]
    got = "" if value is None or var.secret else f" (got {shown(value)})"
    message = f"{name} must be {var.expects}{got}" if var.expects else f"{name} is not valid{got}"
    return InputError(
        name, message + (f": {extra}" if extra else ""), f"Change {name} in the pipe's variables."
    )


def first_pass(environ: Mapping[str, str]) -> dict[str, str]:
    """The pipe's variables that ``environ`` holds, each held to its pattern, in the order of
    VARIABLES: the first that breaks its pattern is the ✖ (``invalid``, which echoes the value
    only when it does not look like a secret). A pattern matches from the start of the value to
    its end, or to a newline that ends it (what bitbucket-pipes-toolkit's Cerberus schema
    checked: ``re.match`` of the pattern and ``$``); ``pipe.config`` strips the values and checks
    the rest."""
    values: dict[str, str] = {}
    for var in VARIABLES:
        value = environ.get(var.name)
        if value is None:
            continue
        if var.pattern and not re.match(var.pattern + "$", value):
            raise invalid(var.name, value)
        values[var.name] = value
    return values
