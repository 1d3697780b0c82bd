"""The Bitbucket stand-in: api.bitbucket.org/2.0 on loopback. For now it serves each
workspace's OIDC discovery document and JWKS (the paths of the OpenAPI excerpt)."""

from __future__ import annotations

import json
import re

from tests.standins.http import Request, Response, Server
from tests.standins.issuer import BITBUCKET_API, Issuer

_OIDC = re.compile(
    r"^/2\.0/workspaces/([^/]+)/pipelines-config/identity/oidc/(\.well-known/openid-configuration|keys\.json)$"
)


class BitbucketStandIn:
    def __init__(self) -> None:
        self.issuers: dict[str, Issuer] = {}
        self.oidc_down = False  # the issuer does not answer (AWS: "Couldn't retrieve verification key")
        self.requests: list[tuple[str, str]] = []
        self._server = Server(self._handle)

    def start(self) -> BitbucketStandIn:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def api_url(self) -> str:
        return f"{self._server.url}/2.0"

    def add_issuer(self, workspace: str) -> Issuer:
        issuer = Issuer(workspace)
        self.issuers[workspace] = issuer
        return issuer

    def resolve(self, url: str) -> str:
        """Where a real api.bitbucket.org URL is served here."""
        return url.replace(BITBUCKET_API, self.api_url, 1)

    def _handle(self, request: Request) -> Response:
        path = request.path.split("?", 1)[0]
        self.requests.append((request.method, path))
        match = _OIDC.match(path)
        if request.method == "GET" and match:
            if self.oidc_down:
                return Response(503, b'{"type": "error", "error": {"message": "Service unavailable"}}')
            issuer = self.issuers.get(match.group(1))
            if issuer is None:
                return _error(404, f"Workspace {match.group(1)} not found")
            document = issuer.discovery() if match.group(2).startswith(".well-known") else issuer.jwks()
            return Response(200, json.dumps(document).encode(), {"Content-Type": "application/json"})
        return _error(404, "Resource not found")


def _error(status: int, message: str) -> Response:
    body = {"type": "error", "error": {"message": message}}
    return Response(status, json.dumps(body).encode(), {"Content-Type": "application/json"})
