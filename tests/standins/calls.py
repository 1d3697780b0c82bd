"""The AWS stand-in's call recorder, for the least-privilege tests: per request the service and
operation, who made it (the signing key's IAM user or assumed role, from moto's backends), in
which account and region, the parameters that name resources, and the authorisation checks
IAM makes for it: each an action, the resource ARN it is authorised against, and the
condition keys the request sets (``aws:TagKeys``, ``aws:RequestTag/*``, ``ses:FromAddress``,
``secretsmanager:BlockPublicPolicy``) and the resource's tags (``aws:ResourceTag/*`` of an IAM
user or a secret).

The ARNs follow AWS's rules for each operation (the Service Authorization Reference):
- an IAM key operation is authorised against the key's user (``UserName``, or the caller's own
  user when it is left out; ``GetAccessKeyLastUsed`` against the user who owns the key);
- a Secrets Manager operation against the secret's ARN, which ends in six characters chosen at
  creation; on a secret that does not exist, by name, against ``arn:...:secret:<name>`` without
  those six characters (what AWS's AccessDenied message names), so that a policy scoped to
  ``<name>-??????`` refuses it while one scoped to a name prefix (``prefix*``) allows it and
  AWS answers ResourceNotFound; CreateSecret against the ARN the new secret gets;
- an SSM parameter by its ARN (``parameter`` + the name, which starts with ``/``); with a
  customer-managed KMS key, the KMS call SSM makes for the caller too (``_ssm_kms``);
- SES ``SendEmail`` against the sender's verified identity: the address, else its domain.
An operation without a rule here records the resource ``?``, which no policy matches: a call
the pipe starts making fails the least-privilege test until its rule and its policy line exist.

``recording(aws)`` attaches one to the AWS stand-in (``AwsStandIn.recorder``) for a block.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.standins.servicemodel import Call

if TYPE_CHECKING:
    from tests.standins.aws import AwsStandIn

UNKNOWN = "?"
# Operations that need no permission at all, and why (the caller's identity policies are not
# consulted for them).
EXEMPT = {
    "sts:GetCallerIdentity": "needs no permission",
    "sts:AssumeRoleWithWebIdentity": "unsigned: the role's trust policy decides (checked by the stand-in STS)",
}
# botocore's service name -> IAM's action prefix, where they differ.
PREFIX = {"sesv2": "ses"}


@dataclass(frozen=True)
class Check:
    """One authorisation IAM makes for a request."""

    action: str  # iam:ListAccessKeys
    resource: str  # the ARN, "*" for an action without resource types, "?" when unknown
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class Recorded:
    service: str  # botocore's name
    operation: str
    region: str
    caller_arn: str  # as GetCallerIdentity says it; "" for an unsigned request
    principal_arn: str  # the IAM user, or the role of a role session
    account: str
    params: dict[str, Any]  # the parameters that name resources
    checks: tuple[Check, ...] = ()
    status: int = 0

    @property
    def action(self) -> str:
        return f"{PREFIX.get(self.service, self.service)}:{self.operation}"

    @property
    def exempt(self) -> str:
        return EXEMPT.get(self.action, "")

    def __str__(self) -> str:
        named = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.action}({named}) by {self.caller_arn or 'nobody (unsigned)'} -> {self.status}"


_NAMING = (
    "UserName",
    "AccessKeyId",
    "RoleName",
    "RoleArn",
    "OpenIDConnectProviderArn",
    "Name",
    "SecretId",
    "FromEmailAddress",
    "GroupName",
)


class CallRecorder:
    """``begin(call, key_id)`` before the stand-in serves a request, ``finish(entry, status)``
    after; ``calls`` holds what was recorded, in order."""

    def __init__(self, caller_of: Callable[[str], Any]) -> None:
        self._caller_of = caller_of
        self._lock = threading.Lock()
        self.calls: list[Recorded] = []

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()

    def begin(self, call: Call | None, key_id: str, action: str) -> Recorded:
        """Who asks, and what (resolved now: a key or a user may be gone once it is served)."""
        if call is None:
            return Recorded("?", action or "?", "", "", "", "", {}, (Check(f"?:{action}", UNKNOWN),))
        caller = self._caller_of(key_id) if key_id else None
        entry = Recorded(
            call.service,
            call.operation.name,
            call.region,
            caller.arn if caller else "",
            caller.principal_arn if caller else "",
            caller.account if caller else "",
            {k: v for k, v in call.params.items() if k in _NAMING},
        )
        entry.checks = tuple(_checks(entry, call.params))
        return entry

    def finish(self, entry: Recorded, status: int) -> None:
        entry.status = status
        if entry.action == "secretsmanager:CreateSecret" and status == 200:
            # Authorised against the ARN the new secret gets (its suffix is chosen at creation).
            arn = _secret_arn(entry.account, entry.region, str(entry.params.get("Name", "")))
            entry.checks = tuple(Check(c.action, arn or c.resource, c.context) for c in entry.checks)
        with self._lock:
            self.calls.append(entry)


@contextlib.contextmanager
def recording(aws: AwsStandIn) -> Iterator[CallRecorder]:
    """Record every call the AWS stand-in serves in detail while the block runs."""
    aws.recorder = CallRecorder(aws._caller)
    try:
        yield aws.recorder
    finally:
        aws.recorder = None


# -- the resources each operation is authorised against ----------------------------------------
def _iam(account: str) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[account]["aws"]


def _user_arn(account: str, name: str) -> str:
    user = _iam(account).users.get(name)
    path = user.path if user is not None and user.path else "/"
    return f"arn:aws:iam::{account}:user{path}{name}"


def _own_user(entry: Recorded) -> str:
    """The caller's own user, for an IAM operation that leaves UserName out."""
    return entry.principal_arn if ":user/" in entry.principal_arn else UNKNOWN


def _key_owner(account: str, key_id: str) -> str:
    key = _iam(account).access_keys.get(key_id)
    return _user_arn(account, key.user_name) if key is not None and key.user_name else UNKNOWN


def _role_arn(account: str, name: str) -> str:
    from moto.iam.exceptions import NotFoundException

    try:
        return str(_iam(account).get_role(name).arn)
    except NotFoundException:
        return f"arn:aws:iam::{account}:role/{name}"


def _secret_arn(account: str, region: str, secret_id: str) -> str | None:
    from moto.secretsmanager.models import secretsmanager_backends

    secret = secretsmanager_backends[account][region].secrets.get(secret_id)
    return str(secret.arn) if secret is not None else None


def _missing_secret_arn(account: str, region: str, secret_id: str) -> str:
    """What IAM authorises a call on a secret that does not exist against: an ARN as given, else
    ``arn:aws:secretsmanager:<region>:<account>:secret:<name>`` (no random suffix: there is none)."""
    if secret_id.startswith("arn:"):
        return secret_id
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}"


def _parameter_arn(account: str, region: str, name: str) -> str:
    if name.startswith("arn:"):
        return name
    return f"arn:aws:ssm:{region}:{account}:parameter{name if name.startswith('/') else '/' + name}"


def _ssm_kms(entry: Recorded, params: dict[str, Any]) -> list[Check]:
    """The KMS call SSM makes for the caller with a SecureString's customer-managed key, which
    IAM authorises against the key's ARN, with kms:ViaService ssm.<region>.amazonaws.com: a
    standard parameter is encrypted with kms:Encrypt (PutParameter with KeyId) and decrypted
    with kms:Decrypt (GetParameter WithDecryption). aws/ssm needs no IAM permission."""
    from tests.standins import ssm_kms

    account, region, name = entry.account, entry.region, str(params["Name"])
    context = {"kms:ViaService": f"ssm.{region}.amazonaws.com"}
    if entry.operation == "PutParameter" and params.get("Type") == "SecureString" and params.get("KeyId"):
        key = ssm_kms.key_arn(account, region, str(params["KeyId"]))
        return [Check("kms:Encrypt", key, context)] if key else []
    if entry.operation == "GetParameter" and params.get("WithDecryption"):
        key = ssm_kms.key_arn(account, region, ssm_kms.parameter_key(account, region, name) or "")
        return [Check("kms:Decrypt", key, context)] if key else []
    return []


def _identity_arn(account: str, region: str, address: str) -> str:
    from moto.ses.models import ses_backends

    verified = ses_backends[account][region].email_identities
    sender = address.rpartition("<")[2].rstrip(">").strip()
    identity = sender if sender in verified else sender.rpartition("@")[2]
    return f"arn:aws:ses:{region}:{account}:identity/{identity}"


def _user_tags(account: str, name: str) -> dict[str, Any]:
    """aws:ResourceTag/<key> of every tag the IAM user has (none when it does not exist)."""
    user = _iam(account).users.get(name)
    tags = _iam(account).tagger.list_tags_for_resource(user.arn)["Tags"] if user is not None else []
    return {f"aws:ResourceTag/{t['Key']}": str(t["Value"]) for t in tags}


def _secret_tags(account: str, region: str, secret_id: str) -> dict[str, Any]:
    """aws:ResourceTag/<key> of every tag the secret has (none when it does not exist)."""
    from moto.secretsmanager.models import secretsmanager_backends

    secret = secretsmanager_backends[account][region].secrets.get(secret_id)
    tags = (secret.tags or []) if secret is not None else []
    return {f"aws:ResourceTag/{t['Key']}": str(t["Value"]) for t in tags}


def _tag_keys(params: dict[str, Any]) -> list[str]:
    return [str(t["Key"]) for t in params.get("Tags", [])] or [str(k) for k in params.get("TagKeys", [])]


_USER_OPERATIONS = {
    "ListAccessKeys",
    "CreateAccessKey",
    "UpdateAccessKey",
    "DeleteAccessKey",
    "ListUserTags",
    "TagUser",
    "UntagUser",
    "GetUser",
    "ListGroupsForUser",
}
_WHOLE_ACCOUNT = {
    "iam:GenerateCredentialReport",
    "iam:GetCredentialReport",
    "iam:GetAccountAuthorizationDetails",
    "iam:ListUsers",
    "iam:ListGroups",
    "organizations:ListAccounts",
    "sts:GetAccessKeyInfo",  # no resource type: any key id, of any account
    "sts:GetCallerIdentity",
    "sts:AssumeRoleWithWebIdentity",
}


def _checks(entry: Recorded, params: dict[str, Any]) -> list[Check]:
    account, region, action = entry.account, entry.region, entry.action
    if action in _WHOLE_ACCOUNT:
        return [Check(action, "*")]
    if entry.service == "iam" and entry.operation in _USER_OPERATIONS:
        user = params.get("UserName")
        resource = _user_arn(account, str(user)) if user else _own_user(entry)
        context: dict[str, Any] = _user_tags(account, str(user or entry.principal_arn.rsplit("/", 1)[-1]))
        if entry.operation in ("TagUser", "UntagUser"):
            context["aws:TagKeys"] = _tag_keys(params)
        return [Check(action, resource, context)]
    if action == "iam:GetAccessKeyLastUsed":
        return [Check(action, _key_owner(account, str(params.get("AccessKeyId", ""))))]
    if action == "iam:GetRole":
        return [Check(action, _role_arn(account, str(params.get("RoleName", ""))))]
    if action == "iam:GetOpenIDConnectProvider":
        return [Check(action, str(params.get("OpenIDConnectProviderArn", UNKNOWN)))]
    if action == "sts:AssumeRole":
        return [Check(action, str(params.get("RoleArn", UNKNOWN)))]
    if entry.service == "ssm" and "Name" in params:
        return [Check(action, _parameter_arn(account, region, str(params["Name"]))), *_ssm_kms(entry, params)]
    if entry.service == "secretsmanager":
        secret_id = str(params.get("SecretId") or params.get("Name") or "")
        arn = _secret_arn(account, region, secret_id)
        if action == "secretsmanager:CreateSecret":
            arn = arn or f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}-AbCdEf"
        arn = arn or _missing_secret_arn(account, region, secret_id)
        # The secret's own tags (aws:ResourceTag), the request's (aws:RequestTag, aws:TagKeys),
        # and PutResourcePolicy's BlockPublicPolicy when the request sets it.
        secret_context: dict[str, Any] = _secret_tags(account, region, secret_id)
        tags = (
            _tag_keys(params)
            if action
            in ("secretsmanager:CreateSecret", "secretsmanager:TagResource", "secretsmanager:UntagResource")
            else []
        )
        if tags:
            secret_context["aws:TagKeys"] = tags
            secret_context.update(
                {f"aws:RequestTag/{t['Key']}": str(t["Value"]) for t in params.get("Tags", [])}
            )
        if action == "secretsmanager:PutResourcePolicy" and params.get("BlockPublicPolicy") is not None:
            secret_context["secretsmanager:BlockPublicPolicy"] = str(
                bool(params["BlockPublicPolicy"])
            ).lower()
        checks = [Check(action, arn, secret_context)]
        if tags and action == "secretsmanager:CreateSecret":
            checks.append(Check("secretsmanager:TagResource", arn, secret_context))
        return checks
    if action == "ses:SendEmail":
        sender = str(params.get("FromEmailAddress", ""))
        return [Check(action, _identity_arn(account, region, sender), {"ses:FromAddress": sender})]
    return [Check(action, UNKNOWN)]
