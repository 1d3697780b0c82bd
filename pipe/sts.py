"""STS: role ARNs, web identity to credentials, and proof of whose credentials they are.

AWS error codes are matched narrowly; each gets its own hint. Messages never include the
token or a secret (AWS's own messages don't, and the console masks them anyway)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipe import oidc, regions
from pipe.errors import AuthError, IdentityError, InputError, PipeError, aws_error
from pipe.retry import call

THROTTLING = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
)
# Anchored with \A...\Z ('$' accepts a trailing newline), re.ASCII (\d and \w are Unicode otherwise).
ROLE_ARN = re.compile(
    rf"\Aarn:({regions.PARTITION_NAME}):iam::(\d{{12}}):role/([\w+=,.@/-]{{1,512}})\Z", re.ASCII
)


@dataclass(frozen=True)
class RoleArn:
    """An IAM role ARN, split into the parts the pipe checks and names."""

    arn: str
    partition: str
    account: str
    name: str  # last path segment: what the assumed-role ARN carries

    @staticmethod
    def parse(text: str) -> RoleArn | None:
        """The role ``text`` names; None when it is not an IAM role ARN."""
        match = ROLE_ARN.fullmatch(text)
        if not match or not regions.is_partition(match.group(1)):
            return None
        return RoleArn(text, match.group(1), match.group(2), match.group(3).rsplit("/", 1)[-1])


@dataclass(frozen=True)
class Hop:
    """One sts:AssumeRole after the first credentials: AWS_ROLE_ARN_FOR_KEYS (the fallback key's
    role) or AWS_CHAINED_ROLE_ARN (role chaining), named by ``variable``."""

    role: RoleArn
    external_id: str | None
    variable: str

    @property
    def external_id_variable(self) -> str:
        return (
            "AWS_CHAINED_EXTERNAL_ID"
            if self.variable == "AWS_CHAINED_ROLE_ARN"
            else "AWS_EXTERNAL_ID_FOR_KEYS"
        )


# AWS caps a session assumed by a role session (role chaining) at one hour.
CHAINED_MAX_SECONDS = 3600


@dataclass(frozen=True)
class Identity:
    """GetCallerIdentity's answer."""

    account: str
    arn: str
    user_id: str


def _client_error() -> type[Exception]:
    from botocore.exceptions import ClientError

    return ClientError  # type: ignore[no-any-return]


def expected_arn(role: RoleArn, session_name: str) -> str:
    return f"arn:{role.partition}:sts::{role.account}:assumed-role/{role.name}/{session_name}"


def assume_role_with_web_identity(
    client: Any,
    *,
    role: RoleArn,
    session_name: str,
    token: str,
    claims: oidc.TokenClaims,
    duration_seconds: int,
    session_policy: str | None,
    retry_timeout: int,
    now: float,
    policy_arns: tuple[str, ...] = (),
) -> Mapping[str, Any]:
    """The ``Credentials`` block of STS's answer (``credentials.Credentials.from_sts`` reads it)."""
    params: dict[str, Any] = {
        "RoleArn": role.arn,
        "RoleSessionName": session_name,
        "WebIdentityToken": token,
        "DurationSeconds": duration_seconds,
        **_policies(session_policy, policy_arns),
    }
    try:
        answer = call(
            lambda: client.assume_role_with_web_identity(**params),
            what=f"AssumeRoleWithWebIdentity on STS in {client.meta.region_name}",
            timeout=retry_timeout,
            hint=(
                "AWS could not reach Bitbucket's OIDC issuer to check the token. Re-run the step; "
                "raise RETRY_TIMEOUT_SECONDS to wait longer."
            ),
        )
    except _client_error() as exc:
        raise _assume_error(exc, role=role, claims=claims, now=now) from None
    block: Mapping[str, Any] = answer["Credentials"]
    return block


def _policies(session_policy: str | None, policy_arns: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if session_policy:
        params["Policy"] = session_policy
    if policy_arns:
        params["PolicyArns"] = [{"arn": arn} for arn in policy_arns]
    return params


def assume_role(
    client: Any,
    *,
    hop: Hop,
    caller: str,
    session_name: str,
    duration_seconds: int,
    session_policy: str | None,
    policy_arns: tuple[str, ...],
    retry_timeout: int,
) -> Mapping[str, Any]:
    """sts:AssumeRole into ``hop.role`` with the client's credentials (``caller`` says whose, for
    the messages): the ``Credentials`` block of STS's answer."""
    params: dict[str, Any] = {
        "RoleArn": hop.role.arn,
        "RoleSessionName": session_name,
        "DurationSeconds": duration_seconds,
        **_policies(session_policy, policy_arns),
    }
    if hop.external_id:
        params["ExternalId"] = hop.external_id
    try:
        answer = call(
            lambda: client.assume_role(**params),
            what=f"AssumeRole into {hop.role.arn} on STS in {client.meta.region_name}",
            timeout=retry_timeout,
            hint="Re-run the step.",
        )
    except _client_error() as exc:
        raise _assume_role_error(exc, hop=hop, caller=caller) from None
    block: Mapping[str, Any] = answer["Credentials"]
    return block


def _assume_role_error(exc: Exception, *, hop: Hop, caller: str) -> PipeError:
    code, message = aws_error(exc)
    aws = f"({code}: {message})" if message else f"({code})"
    if code == "AccessDenied":
        condition = (
            f", with the condition sts:ExternalId equal to {hop.external_id_variable}"
            if hop.external_id
            else f" (and sts:ExternalId, when it asks for one: set {hop.external_id_variable})"
        )
        from pipe.templates import HOP_GRANTS  # the fix's text: only when AWS refused

        grant = f" ({HOP_GRANTS[hop.variable]})" if hop.variable in HOP_GRANTS else ""
        return AuthError(
            code,
            f"AWS refused to let {caller} assume {hop.role.arn} ({hop.variable}) {aws}",
            f"Let {caller} in: the trust policy of {hop.role.arn} must allow sts:AssumeRole for it"
            f"{condition}, and its own policies must allow sts:AssumeRole on {hop.role.arn}{grant}.",
        )
    if code == "ValidationError" and "chaining" in message.lower():
        return InputError(
            "AWS_ROLE_DURATION_SECONDS",
            f"AWS refused the session's duration for {hop.role.arn} {aws}",
            "AWS caps a session assumed by a role session at 3600 seconds: lower AWS_ROLE_DURATION_SECONDS.",
        )
    if code in ("ValidationError", "PackedPolicyTooLarge", "MalformedPolicyDocument"):
        return _request_error(code, message, aws, hop.role, variable=hop.variable)
    if code in THROTTLING:
        return AuthError(code, f"AWS kept throttling AssumeRole {aws}", "Re-run the step in a minute.")
    return AuthError(code, f"AssumeRole into {hop.role.arn} failed {aws}", f"Check {hop.variable}.")


def _assume_error(exc: Exception, *, role: RoleArn, claims: oidc.TokenClaims, now: float) -> PipeError:
    code, message = aws_error(exc)
    aws = f"({code}: {message})" if message else f"({code})"
    provider = claims.provider
    claims_block = (
        "The step's OIDC token (claims, not secret):",
        *(f"  {line}" for line in claims.summary()),
    )
    if code == "AccessDenied":
        return AuthError(
            code,
            f"AWS refused to let this step assume {role.arn} {aws}",
            f"Change the role's trust policy to admit this token: the statement printed above, whose conditions "
            f"use the exact keys {provider}:aud and {provider}:sub.",
            (
                *claims_block,
                "A trust-policy statement that admits this step (exact condition keys):",
                *(f"  {line}" for line in oidc.trust_statement_lines(claims, role.account, role.partition)),
            ),
        )
    if code == "InvalidIdentityToken":
        hint = _invalid_token_hint(message, role=role, claims=claims)
        return AuthError(code, f"AWS rejected the step's OIDC token {aws}", hint, claims_block)
    if code == "ExpiredTokenException":
        return AuthError(
            code,
            f"AWS says the step's OIDC token has expired {aws}: {oidc.expiry_text(claims, now)}"
            + _clock_difference(message, claims, now),
            "Run the pipe early in the step (the token is minted when the step starts), or re-run the step; "
            "if the clocks differ by more than a minute, fix the runner's time sync (NTP).",
            claims_block,
        )
    return _request_error(code, message, aws, role)


def _invalid_token_hint(message: str, *, role: RoleArn, claims: oidc.TokenClaims) -> str:
    """What to change when STS says InvalidIdentityToken, by what its message names."""
    lowered = message.lower()
    if "no openidconnect provider" in lowered:
        return (
            f"Create the IAM OIDC identity provider in account {role.account}: provider URL {claims.iss}, "
            f"audience {claims.aud}."
        )
    if "audience" in lowered:
        return (
            f"Add the audience {claims.aud} to the IAM OIDC provider for {claims.provider} (IAM > Identity "
            "providers > Audiences); Bitbucket's audience has no braces around the workspace UUID."
        )
    if "verification key" in lowered:
        return (
            f"AWS could not fetch the signing keys from {claims.iss}/keys.json: check the provider URL in "
            "IAM is exactly the token's issuer, then re-run the step."
        )
    if "valid jwt" in lowered:
        return (
            "Pass the step's own token: add `oidc: true` and do not set BITBUCKET_STEP_OIDC_TOKEN yourself."
        )
    return (
        f"The token was not accepted for the IAM OIDC provider {claims.provider}; check the provider's URL and "
        "audience match the claims above."
    )


def _clock_difference(message: str, claims: oidc.TokenClaims, now: float) -> str:
    """How far AWS's clock (which its ExpiredTokenException message gives) is from this machine's."""
    aws_clock = re.search(r"current date/time\s*(\d{9,})", message)
    if not aws_clock or claims.exp is None:
        return ""
    skew = int(aws_clock.group(1)) - int(now)
    return f"; AWS's clock is {abs(skew)}s {'ahead of' if skew >= 0 else 'behind'} this machine's"


def _request_error(
    code: str, message: str, aws: str, role: RoleArn, variable: str = "AWS_OIDC_ROLE_ARN"
) -> PipeError:
    """A refusal of the request's parameters, of the region, or throttling."""
    if code == "ValidationError":
        lowered = message.lower()
        if "durationseconds" in lowered:
            hint = "Lower AWS_ROLE_DURATION_SECONDS, or raise the role's MaxSessionDuration."
            variable = "AWS_ROLE_DURATION_SECONDS"
        elif "rolesessionname" in lowered:
            variable, hint = "AWS_ROLE_SESSION_NAME", "Change AWS_ROLE_SESSION_NAME."
        elif "policyarns" in lowered or "policy arn" in lowered:
            variable, hint = "AWS_ROLE_SESSION_POLICY_ARNS", "Fix AWS_ROLE_SESSION_POLICY_ARNS."
        elif "policy" in lowered:
            variable, hint = "AWS_ROLE_SESSION_POLICY", "Fix AWS_ROLE_SESSION_POLICY."
        else:
            hint = f"Check {variable} and the other role variables."
        return InputError(variable, f"AWS refused the request {aws}", hint)
    if code in ("PackedPolicyTooLarge", "MalformedPolicyDocument"):
        return InputError(
            "AWS_ROLE_SESSION_POLICY",
            f"AWS refused the session policy {aws}",
            "Shorten or fix AWS_ROLE_SESSION_POLICY.",
        )
    if code == "RegionDisabledException":
        return InputError(
            "AWS_DEFAULT_REGION",
            f"STS is not active in {role.account} for this region {aws}",
            "Activate STS for the region in IAM > Account settings, or use another AWS_DEFAULT_REGION.",
        )
    if code in THROTTLING:
        return AuthError(
            code, f"AWS kept throttling AssumeRoleWithWebIdentity {aws}", "Re-run the step in a minute."
        )
    return AuthError(
        code, f"AssumeRoleWithWebIdentity failed {aws}", "Check the role and the IAM OIDC provider."
    )


def get_caller_identity(client: Any, *, retry_timeout: int, fallback_key: bool) -> Identity:
    try:
        answer = call(
            client.get_caller_identity,
            what=f"GetCallerIdentity on STS in {client.meta.region_name}",
            timeout=retry_timeout,
            hint="Re-run the step.",  # GetCallerIdentity never answers IDPCommunicationError
        )
    except _client_error() as exc:
        code, message = aws_error(exc)
        aws = f"({code}: {message})"
        if fallback_key and code == "InvalidClientTokenId":
            raise AuthError(
                code,
                f"AWS does not accept AWS_ACCESS_KEY_ID {aws}",
                "The key was deleted or deactivated: put a current key in AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or better, move this step to OIDC.",
            ) from None
        if fallback_key and code == "SignatureDoesNotMatch":
            raise AuthError(
                code,
                f"AWS_SECRET_ACCESS_KEY does not belong to AWS_ACCESS_KEY_ID {aws}",
                "Put the matching secret in AWS_SECRET_ACCESS_KEY.",
            ) from None
        if code in THROTTLING:
            raise AuthError(
                code, f"AWS kept throttling GetCallerIdentity {aws}", "Re-run the step in a minute."
            ) from None
        raise AuthError(
            code,
            f"GetCallerIdentity failed with the new credentials {aws}",
            "Nothing was written; re-run the step.",
        ) from None
    return Identity(account=answer["Account"], arn=answer["Arn"], user_id=answer["UserId"])


def verify_identity(identity: Identity, *, expected: str | None, allowed_accounts: frozenset[str]) -> None:
    """Raise unless the identity is the expected one and in an allowed account."""
    if expected is not None and identity.arn != expected:
        raise IdentityError(
            f"GetCallerIdentity says the new credentials are {identity.arn}, expected {expected}",
            "Nothing was written. Check AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_STS point at the real STS of "
            "the role's account.",
        )
    if allowed_accounts and identity.account not in allowed_accounts:
        raise IdentityError(
            f"The credentials belong to account {identity.account}, which ALLOWED_ACCOUNT_IDS "
            f"({', '.join(sorted(allowed_accounts))}) does not list",
            "Nothing was written. Use credentials of an allowed account, or add it to ALLOWED_ACCOUNT_IDS.",
        )
