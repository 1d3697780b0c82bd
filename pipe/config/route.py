"""How the run gets its own credentials: the step's OIDC token and AWS_OIDC_ROLE_ARN, or the
fallback access key (warned). Decided before any call to AWS."""

from __future__ import annotations

from collections.abc import Mapping

from pipe import oidc
from pipe.config import fields
from pipe.config.fields import ACCESS_KEY_ID, TEMPORARY_KEY_ID
from pipe.credentials import Credentials, Route
from pipe.errors import InputError
from pipe.schema import invalid
from pipe.sts import Hop

_NO_TOKEN = "this step has no OIDC token"
_ENABLE = "add `oidc: true` to the step"


def fallback_key(values: Mapping[str, str | None], temporary: bool = False) -> Credentials | None:
    """AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, both or neither. ``temporary`` (assume): a
    temporary key (ASIA...) with its AWS_SESSION_TOKEN is accepted too."""
    key_id, secret = values.get("AWS_ACCESS_KEY_ID"), values.get("AWS_SECRET_ACCESS_KEY")
    token = values.get("AWS_SESSION_TOKEN") if temporary else None
    if bool(key_id) != bool(secret):
        missing = "AWS_SECRET_ACCESS_KEY" if key_id else "AWS_ACCESS_KEY_ID"
        raise InputError(missing, f"{missing} is missing", "Set both fallback key variables, or neither.")
    if not (key_id and secret):
        if token:
            raise InputError(
                "AWS_SESSION_TOKEN",
                "AWS_SESSION_TOKEN is set without AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                "Set the temporary key it belongs to, or remove AWS_SESSION_TOKEN.",
            )
        return None
    if temporary and TEMPORARY_KEY_ID.match(key_id):
        if not token:
            raise InputError(
                "AWS_SESSION_TOKEN",
                "AWS_ACCESS_KEY_ID is a temporary key (ASIA...) but AWS_SESSION_TOKEN is not set",
                "Set AWS_SESSION_TOKEN to the key's session token.",
            )
        return Credentials(key_id, secret, token)
    if not ACCESS_KEY_ID.match(key_id):
        raise invalid("AWS_ACCESS_KEY_ID", key_id)
    if token:
        raise InputError(
            "AWS_SESSION_TOKEN",
            "AWS_SESSION_TOKEN goes with a temporary key (ASIA...), and AWS_ACCESS_KEY_ID is a long-lived key",
            "Remove AWS_SESSION_TOKEN, or give the temporary key it belongs to.",
        )
    return Credentials(key_id, secret)


def hops(values: Mapping[str, str], chosen: Route, partition: str, assume: bool) -> tuple[Hop, ...]:
    """The sts:AssumeRole hops after the first credentials: AWS_ROLE_ARN_FOR_KEYS (the fallback
    key's role), then AWS_CHAINED_ROLE_ARN. Validated whatever the action; used by assume only."""
    found: list[Hop] = []
    for role_name, id_name, route in (
        ("AWS_ROLE_ARN_FOR_KEYS", "AWS_EXTERNAL_ID_FOR_KEYS", Route.ACCESS_KEY),
        ("AWS_CHAINED_ROLE_ARN", "AWS_CHAINED_EXTERNAL_ID", None),
    ):
        external_id = fields.external_id(values, id_name)
        arn = values.get(role_name)
        if not arn:
            if external_id:
                raise InputError(
                    id_name,
                    f"{id_name} is set but {role_name} is not",
                    f"Set {role_name}, or remove {id_name}.",
                )
            continue
        role = fields.role(arn, partition, role_name)
        if assume and route in (None, chosen):
            found.append(Hop(role, external_id, role_name))
    return tuple(found)


def for_check(values: Mapping[str, str]) -> tuple[Route, str, Credentials | None]:
    """The check goes by OIDC; the token's absence is one of its findings, not an input
    error; a fallback key, when given, is what it reads IAM with. Without AWS_OIDC_ROLE_ARN it
    is the first run, which prints the AWS side to deploy (pipe.bootstrap)."""
    return Route.OIDC, "", fallback_key(values)


def choose(
    values: Mapping[str, str | None], require_oidc: bool, temporary: bool = False
) -> tuple[Route, str, Credentials | None]:
    """(route, the fallback's warning, the fallback key). OIDC when the step has a token and a
    role is given; else the fallback key, unless REQUIRE_OIDC=true or there is none."""
    key = fallback_key(values, temporary)
    token = values.get(oidc.TOKEN_VARIABLE)
    role = values.get("AWS_OIDC_ROLE_ARN")
    if token and role:
        return Route.OIDC, "", key
    if require_oidc or not key:
        raise _no_credentials(bool(role), bool(token), require_oidc)
    if role:
        warning = f"AWS_OIDC_ROLE_ARN is set but {_NO_TOKEN}: using the fallback access key. To use OIDC, {_ENABLE}."
    elif token:
        warning = "Using the fallback access key. To use OIDC, set AWS_OIDC_ROLE_ARN (the step already has `oidc: true`)."
    else:
        warning = (
            f"Using the long-lived fallback access key. To use OIDC, {_ENABLE} and set AWS_OIDC_ROLE_ARN."
        )
    return Route.ACCESS_KEY, warning + " REQUIRE_OIDC=true forbids this fallback.", key


def _no_credentials(role: bool, token: bool, require_oidc: bool) -> InputError:
    if role:
        return InputError(
            oidc.TOKEN_VARIABLE,
            f"AWS_OIDC_ROLE_ARN is set but {_NO_TOKEN} (BITBUCKET_STEP_OIDC_TOKEN is empty)",
            "Add `oidc: true` to the step that runs the pipe.",
        )
    if token:
        return InputError(
            "AWS_OIDC_ROLE_ARN",
            "AWS_OIDC_ROLE_ARN is required",
            "Set AWS_OIDC_ROLE_ARN to the ARN of the role this step should assume.",
        )
    fallback = "" if require_oidc else " (or, as a fallback, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    return InputError(
        oidc.TOKEN_VARIABLE,
        f"No credentials: {_NO_TOKEN} (BITBUCKET_STEP_OIDC_TOKEN is empty) and AWS_OIDC_ROLE_ARN is not set",
        f"To use OIDC, {_ENABLE} and set AWS_OIDC_ROLE_ARN{fallback}.",
    )
