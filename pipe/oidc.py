"""The step's OIDC token: decode its claims (never its signature: that is AWS's job at
``AssumeRoleWithWebIdentity``) and say what a role's trust policy must hold to accept it.
``ACTION=check`` also verifies the signature, against Bitbucket's own JWKS only."""

# Over 300 lines: the step token's claims, the trust statement it needs, and the check's signature
# verification against Bitbucket's JWKS only (with the rules on where keys may be fetched from).

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pipe.errors import InputError
from pipe.schema import default
from pipe.urls import check_api_url, unplain

if TYPE_CHECKING:
    from pipe.network import Network

TOKEN_VARIABLE = "BITBUCKET_STEP_OIDC_TOKEN"
# The latest time a claim may name: 9999-12-31T23:59:59Z (what a datetime can show).
LATEST_TIME = 253402300799


def printable(text: str) -> str:
    """``text`` safe to print on one line: control and other non-printing characters
    (newlines, escapes, bidi overrides) are shown escaped, as ``\\n``, ``\\x1b``, ``\\u202e``."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


@dataclass(frozen=True)
class TokenClaims:
    """The token's non-secret claims, as printable text (see ``printable``; Bitbucket's claims,
    UUIDs and branch names, never hold a character it changes). The token itself is never
    kept here."""

    iss: str
    aud: str
    sub: str
    workspace_uuid: str = ""
    repository_uuid: str = ""
    deployment_environment_uuid: str = ""
    branch: str = ""
    pipeline_uuid: str = ""
    step_uuid: str = ""
    iat: int | None = None
    exp: int | None = None

    @property
    def provider(self) -> str:
        """The issuer as IAM names it: no scheme, no trailing slash; the condition-key prefix."""
        issuer = self.iss.split("://", 1)[-1]
        return issuer.rstrip("/")

    @property
    def in_deployment(self) -> bool:
        return bool(self.deployment_environment_uuid)

    def summary(self) -> list[str]:
        rows = [
            ("iss", self.iss),
            ("aud", self.aud),
            ("sub", self.sub),
            ("repositoryUuid", self.repository_uuid),
            ("deploymentEnvironmentUuid", self.deployment_environment_uuid or "(not a deployment step)"),
            ("branchName", self.branch),
            ("exp", _when(self.exp)),
        ]
        return [f"{name:<26} {printable(value)}" for name, value in rows if value]


def _when(epoch: int | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _segment(part: str) -> Any:
    """One base64url JSON segment of a compact JWS (RFC 7515 section 7.1)."""
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def decode(token: str) -> TokenClaims:
    """Decode the claims without verifying the signature. Raises InputError on anything that
    is not a Bitbucket OIDC token, before any call to AWS.

    Read with the standard library on purpose (a compact JWS's header and payload are
    base64url JSON, RFC 7515): this is on every ``assume`` run's start-up path, and importing
    PyJWT imports ``cryptography``, 21 ms more per run in the image. The signature, the part
    that needs a JOSE library, is ``check``'s (``verify_signature``, on PyJWT)."""
    hint = (
        f"Pass the step's own token: add `oidc: true` to the step and do not set {TOKEN_VARIABLE} yourself."
    )
    parts = token.split(".")
    try:
        if len(parts) != 3:
            raise ValueError("not three segments")
        header, raw = _segment(parts[0]), _segment(parts[1])
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise InputError(TOKEN_VARIABLE, f"{TOKEN_VARIABLE} is not a JSON Web Token", hint) from None
    if not isinstance(header, dict) or not isinstance(raw, dict):
        raise InputError(TOKEN_VARIABLE, f"{TOKEN_VARIABLE} is not a JSON Web Token", hint)
    aud = raw.get("aud")
    if isinstance(aud, list):
        aud = aud[0] if len(aud) == 1 else ",".join(str(a) for a in aud)
    if not isinstance(raw.get("iss"), str) or not isinstance(raw.get("sub"), str) or not aud:
        raise InputError(TOKEN_VARIABLE, f"{TOKEN_VARIABLE} lacks the iss, aud or sub claim", hint)

    def text(name: str) -> str:
        value = raw.get(name)
        return printable(value) if isinstance(value, str) else ""

    def number(name: str) -> int | None:
        """A NumericDate (seconds since 1970), or None when absent. Anything else (a string,
        true, NaN, Infinity, 1e300, a negative number) is no time at all."""
        value = raw.get(name)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and not math.isfinite(value))
            or not 0 <= value <= LATEST_TIME
        ):
            shown = printable(str(value)[:40])
            raise InputError(
                TOKEN_VARIABLE,
                f"{TOKEN_VARIABLE} has an invalid {name} claim ({shown}): not a time in seconds since 1970",
                hint,
            )
        return int(value)

    return TokenClaims(
        iss=printable(raw["iss"]),
        aud=printable(str(aud)),
        sub=printable(raw["sub"]),
        workspace_uuid=text("workspaceUuid"),
        repository_uuid=text("repositoryUuid"),
        deployment_environment_uuid=text("deploymentEnvironmentUuid"),
        branch=text("branchName"),
        pipeline_uuid=text("pipelineUuid"),
        step_uuid=text("stepUuid"),
        iat=number("iat"),
        exp=number("exp"),
    )


def provider_arn(claims: TokenClaims, account: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account}:oidc-provider/{claims.provider}"


def sub_pattern(claims: TokenClaims) -> str:
    """The ``sub`` pattern that admits this repository's steps (and only them).

    Bitbucket's ``sub`` is ``{repositoryUuid}:{stepUuid}``, or in a deployment step
    ``{repositoryUuid}:{deploymentEnvironmentUuid}:{stepUuid}``.
    """
    repo = claims.repository_uuid or claims.sub.split(":", 1)[0]
    if claims.in_deployment:
        return f"{repo}:{claims.deployment_environment_uuid}:*"
    return f"{repo}:*"


def trust_statement(claims: TokenClaims, account: str, partition: str = "aws") -> dict[str, Any]:
    """The trust-policy statement that admits this token, with the exact condition keys."""
    return {
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn(claims, account, partition)},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {f"{claims.provider}:aud": claims.aud},
            "StringLike": {f"{claims.provider}:sub": sub_pattern(claims)},
        },
    }


def trust_statement_lines(claims: TokenClaims, account: str, partition: str = "aws") -> list[str]:
    return json.dumps(trust_statement(claims, account, partition), indent=2).splitlines()


def expiry_text(claims: TokenClaims, now: float) -> str:
    if claims.exp is None:
        return "the token carries no exp claim"
    delta = int(claims.exp - now)
    state = f"expired {-delta}s ago" if delta < 0 else f"valid for {delta}s more"
    return f"token exp {_when(claims.exp)}, this machine's clock {_when(int(now))} ({state})"


BITBUCKET_API = default("BITBUCKET_API_URL")  # Bitbucket's own API, where its issuer lives
_ISSUER_PATH = "/workspaces/{workspace}/pipelines-config/identity/oidc"
# A workspace slug (letters, digits, - and _) or its {UUID}.
_WORKSPACE = re.compile(r"[A-Za-z0-9_-]+|\{[0-9A-Fa-f-]{36}\}", re.ASCII)
MAX_DOCUMENT_BYTES = 1 << 20
SIGNING_ALGORITHM = "RS256"  # Bitbucket's; the only one accepted, whatever the token's header says


def _api_bases(bitbucket_url: str) -> list[str]:
    """Where Bitbucket's issuer may live: api.bitbucket.org, or the configured API (a
    stand-in, a proxy), which must be https unless it is on loopback."""
    configured = bitbucket_url.rstrip("/")
    return [BITBUCKET_API] + (
        [configured] if configured != BITBUCKET_API and not check_api_url(configured) else []
    )


def _on_base(url: str, bitbucket_url: str) -> tuple[str, str] | None:
    """(base, path under it) when ``url`` is on one of the API bases, plain (no user, query,
    fragment, dot segment or backslash); None otherwise."""
    for base in _api_bases(bitbucket_url):
        if not url.startswith(base + "/"):
            continue
        rest = url[len(base) :]
        parts = urlsplit(url)
        if (
            unplain(url) is not None
            or parts.query
            or parts.fragment
            or any(segment in (".", "..") for segment in rest.split("/"))
        ):
            return None
        return base, rest
    return None


def issuer_problem(iss: str, bitbucket_url: str) -> str | None:
    """None when ``iss`` is Bitbucket's issuer,
    ``https://api.bitbucket.org/2.0/workspaces/<workspace>/pipelines-config/identity/oidc``
    (or the same path under BITBUCKET_API_URL); otherwise why the check will not fetch its keys."""
    found = _on_base(iss, bitbucket_url)
    if found is not None:
        prefix, _, rest = found[1].partition("/workspaces/")
        workspace, _, tail = rest.partition("/")
        if not prefix and _WORKSPACE.fullmatch(workspace) and tail == "pipelines-config/identity/oidc":
            return None
    expected = BITBUCKET_API + _ISSUER_PATH.format(workspace="<workspace>")
    return f"the token's issuer {printable(iss)} is not Bitbucket's ({expected})"


class _Unreadable(Exception):
    pass


def _fetch(session: Any, url: str, what: str, timeout: float) -> Any:
    """GET one JSON document: no redirects, at most MAX_DOCUMENT_BYTES."""
    response = session.get(
        url, timeout=timeout, allow_redirects=False, stream=True, headers={"Accept": "application/json"}
    )
    with response:
        if 300 <= response.status_code < 400:
            raise _Unreadable(f"{what} answered a redirect ({response.status_code}), which is not followed")
        if response.status_code != 200:
            raise _Unreadable(f"{what} answered HTTP {response.status_code}")
        body = response.raw.read(MAX_DOCUMENT_BYTES + 1, decode_content=True)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise _Unreadable(f"{what} is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise _Unreadable(f"{what} is not JSON") from None


def _signing_keys(iss: str, bitbucket_url: str, timeout: float, network: Network | None) -> tuple[Any, str]:
    """The issuer's JWKS (a PyJWKSet) and its URI, read from Bitbucket only: the discovery
    document under the issuer, then a ``jwks_uri`` on the issuer's own origin, both fetched
    from BITBUCKET_API_URL. Raises _Unreadable."""
    import jwt
    import requests

    local = bitbucket_url.rstrip("/")
    refused = check_api_url(local)
    if refused:
        raise _Unreadable(f"BITBUCKET_API_URL {printable(local)} {refused}")
    base, path = _on_base(iss, bitbucket_url) or ("", "")
    try:
        with requests.Session() as session:
            session.trust_env = False  # proxies and CA bundle from the settings only (pipe.network)
            if network is not None:
                session.proxies.update({k: v for k, v in network.proxies(local).items() if v})
                if network.ca_bundle:
                    session.verify = network.ca_bundle
            discovery = _fetch(
                session, f"{local}{path}/.well-known/openid-configuration", "the discovery document", timeout
            )
            jwks_uri = discovery.get("jwks_uri") if isinstance(discovery, dict) else None
            if not isinstance(jwks_uri, str):
                raise _Unreadable("the discovery document names no jwks_uri")
            on = _on_base(jwks_uri, bitbucket_url)
            if on is None or on[0] != base:
                raise _Unreadable(
                    f"the jwks_uri {printable(jwks_uri)[:200]} is not on the issuer's origin ({base})"
                )
            document = _fetch(session, f"{local}{on[1]}", "the JWKS", timeout)
    except requests.RequestException as exc:
        raise _Unreadable(f"Bitbucket did not answer ({type(exc).__name__})") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys:
        raise _Unreadable("the JWKS has no list of keys")
    try:
        return jwt.PyJWKSet(keys), jwks_uri
    except (jwt.PyJWTError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise _Unreadable(f"the JWKS holds no usable key ({type(exc).__name__})") from None


def verify_signature(
    token: str, claims: TokenClaims, bitbucket_url: str, timeout: float = 5, network: Network | None = None
) -> tuple[bool | None, str]:
    """(True, how) verified; (False, why) the signature does not verify; (None, why) not
    verified: the issuer is not Bitbucket's, or its keys could not be read.

    Keys come from Bitbucket alone (``issuer_problem``): a token naming any other issuer is
    never fetched from, whatever it says, and neither is a redirect or a ``jwks_uri`` on
    another origin. The signature is checked by PyJWT (on ``cryptography``), RS256 only."""
    problem = issuer_problem(claims.iss, bitbucket_url)
    if problem:
        return None, f"signature not verified: {problem}"
    import jwt

    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return False, "the token's header cannot be read"
    kid, alg = header.get("kid"), header.get("alg")
    if alg != SIGNING_ALGORITHM:
        return (
            False,
            f"the token is signed with {printable(str(alg))[:40]}, not {SIGNING_ALGORITHM} as Bitbucket signs",
        )
    shown = printable(str(kid))[:80]
    try:
        keys, jwks_uri = _signing_keys(claims.iss, bitbucket_url, timeout, network)
    except _Unreadable as exc:
        return None, f"signature not verified: the issuer's keys could not be read ({exc})"
    jwk = next((k for k in keys if k.key_id == kid and isinstance(kid, str)), None)
    if jwk is None:
        return False, f"the issuer publishes no key with the token's kid {shown!r}"
    if jwk.key_type != "RSA" or jwk.algorithm_name != SIGNING_ALGORITHM:
        return False, f"the issuer's key {shown} is not an {SIGNING_ALGORITHM} key"
    try:
        jwt.PyJWS().decode_complete(token, key=jwk.key, algorithms=[SIGNING_ALGORITHM])
    except jwt.PyJWTError as exc:
        return False, f"the signature does not verify against the issuer's key {shown} ({exc})"
    return True, f"signature verified against the issuer's key {shown} ({printable(jwks_uri)})"
