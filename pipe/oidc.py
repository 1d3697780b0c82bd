"""The step's OIDC token: decode its claims (never its signature: that is AWS's job at
``AssumeRoleWithWebIdentity``) and say what a role's trust policy must hold to accept it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipe.errors import InputError

TOKEN_VARIABLE = "BITBUCKET_STEP_OIDC_TOKEN"


@dataclass(frozen=True)
class TokenClaims:
    """The token's non-secret claims. The token itself is never kept here."""

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
        return [f"{name:<26} {value}" for name, value in rows if value]


def _when(epoch: int | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def decode(token: str) -> TokenClaims:
    """Decode the claims without verifying the signature. Raises InputError on anything that
    is not a Bitbucket OIDC token, before any call to AWS."""
    import jwt  # PyJWT; kept off the start-up path of runs without a token

    hint = (
        f"Pass the step's own token: add `oidc: true` to the step and do not set {TOKEN_VARIABLE} yourself."
    )
    try:
        raw: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise InputError(TOKEN_VARIABLE, f"{TOKEN_VARIABLE} is not a JSON Web Token", hint) from None
    aud = raw.get("aud")
    if isinstance(aud, list):
        aud = aud[0] if len(aud) == 1 else ",".join(str(a) for a in aud)
    if not isinstance(raw.get("iss"), str) or not isinstance(raw.get("sub"), str) or not aud:
        raise InputError(TOKEN_VARIABLE, f"{TOKEN_VARIABLE} lacks the iss, aud or sub claim", hint)

    def text(name: str) -> str:
        value = raw.get(name)
        return value if isinstance(value, str) else ""

    def number(name: str) -> int | None:
        value = raw.get(name)
        return int(value) if isinstance(value, int | float) else None

    return TokenClaims(
        iss=raw["iss"],
        aud=str(aud),
        sub=raw["sub"],
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


BITBUCKET_API = "https://api.bitbucket.org/2.0"


def _rsa_algorithm() -> Any:
    """RS256 for PyJWT on python-rsa (pure Python): PyJWT's own RSA support needs the
    cryptography package, about 14 MB the image does not otherwise need."""
    import rsa
    from jwt.algorithms import Algorithm
    from jwt.utils import base64url_decode

    class PurePythonRS256(Algorithm):
        def prepare_key(self, key: Any) -> Any:
            return key

        @staticmethod
        def from_jwk(jwk: Any) -> Any:
            data = json.loads(jwk) if isinstance(jwk, str) else jwk
            n = int.from_bytes(base64url_decode(data["n"]), "big")
            e = int.from_bytes(base64url_decode(data["e"]), "big")
            return rsa.PublicKey(n, e)

        @staticmethod
        def to_jwk(key: Any, as_dict: bool = False) -> Any:
            raise NotImplementedError

        def sign(self, msg: bytes, key: Any) -> bytes:
            raise NotImplementedError

        def verify(self, msg: bytes, key: Any, sig: bytes) -> bool:
            try:
                return bool(rsa.verify(msg, sig, key) == "SHA-256")
            except rsa.VerificationError:
                return False

    return PurePythonRS256()


def verify_signature(
    token: str, claims: TokenClaims, bitbucket_url: str, timeout: float = 5
) -> tuple[bool | None, str]:
    """(True, how) verified; (False, why) the signature does not verify; (None, why) the
    issuer's keys could not be read, so the signature was not verified."""
    import jwt
    import requests

    def local(url: str) -> str:
        return url.replace(BITBUCKET_API, bitbucket_url.rstrip("/"), 1)

    try:
        discovery = requests.get(local(f"{claims.iss}/.well-known/openid-configuration"), timeout=timeout)
        discovery.raise_for_status()
        jwks_uri = str(discovery.json()["jwks_uri"])
        keys = requests.get(local(jwks_uri), timeout=timeout)
        keys.raise_for_status()
        jwks = keys.json()["keys"]
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        return None, f"signature not verified: the issuer's keys could not be read ({type(exc).__name__})"
    kid = jwt.get_unverified_header(token).get("kid")
    jwk = next((k for k in jwks if k.get("kid") == kid), None)
    if jwk is None:
        return False, f"the issuer publishes no key with the token's kid {kid!r}"
    algorithm = _rsa_algorithm()
    jws = jwt.PyJWS(algorithms=[])
    jws.register_algorithm("RS256", algorithm)
    try:
        jws.decode_complete(token, key=algorithm.from_jwk(jwk), algorithms=["RS256"])
    except jwt.PyJWTError as exc:
        return False, f"the signature does not verify against the issuer's key {kid} ({exc})"
    return True, f"signature verified against the issuer's key {kid} ({jwks_uri})"
