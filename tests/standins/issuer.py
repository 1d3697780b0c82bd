"""Bitbucket's OIDC issuer: RS256 tokens with Bitbucket's real claim set, its discovery
document and JWKS."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.standins import registry

BITBUCKET_API = "https://api.bitbucket.org/2.0"


def braced() -> str:
    return "{" + str(uuid.uuid4()) + "}"


@dataclass
class Issuer:
    workspace: str
    workspace_uuid: str = field(default_factory=braced)
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def url(self) -> str:
        return f"{BITBUCKET_API}/workspaces/{self.workspace}/pipelines-config/identity/oidc"

    @property
    def audience(self) -> str:
        return f"ari:cloud:bitbucket::workspace/{self.workspace_uuid.strip('{}')}"

    @property
    def provider(self) -> str:
        return self.url.split("://", 1)[1]

    def jwks(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        jwk.update({"kid": self.kid, "alg": "RS256", "use": "sig"})
        return {"keys": [jwk]}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/keys.json",
            "subject_types_supported": ["public"],
            "response_types_supported": ["id_token"],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def mint(
        self,
        repository_uuid: str,
        *,
        step_uuid: str | None = None,
        environment_uuid: str | None = None,
        branch: str = "main",
        lifetime: int = 3600,
        issued_offset: int = 0,
        audience: str | None = None,
        extra: dict[str, Any] | None = None,
        signing_key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        now = int(time.time()) + issued_offset
        step = step_uuid or braced()
        sub = (
            f"{repository_uuid}:{environment_uuid}:{step}"
            if environment_uuid
            else f"{repository_uuid}:{step}"
        )
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": audience or self.audience,
            "sub": sub,
            "workspaceUuid": self.workspace_uuid,
            "repositoryUuid": repository_uuid,
            "pipelineUuid": braced(),
            "stepUuid": step,
            "branchName": branch,
            "iat": now,
            "exp": now + lifetime,
        }
        if environment_uuid:
            claims["deploymentEnvironmentUuid"] = environment_uuid
        claims.update(extra or {})
        token = jwt.encode(claims, signing_key or self._key, algorithm="RS256", headers={"kid": self.kid})
        registry.record(token)
        return token


def foreign_key() -> rsa.RSAPrivateKey:
    """A key nobody publishes: tokens signed with it must fail signature checks."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
