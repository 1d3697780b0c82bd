"""The Bitbucket stand-in: api.bitbucket.org/2.0 on loopback, following
shared/bitbucket-api/openapi-excerpt.json.

- Routes are the excerpt's paths; each operation requires the OAuth scope its `security`
  names (access tokens, Bearer) or the API-token scopes of `x-atlassian-oauth2-scopes`
  (Basic with an Atlassian email and API token).
- Pagination: `page` and `pagelen` (default 10, at most 100), `size`, `next`.
- Secured values are stored but never returned; a PUT never makes a secured variable unsecured.
- 409 on a duplicate key, 404 for unknown workspaces, repositories, environments, variables.
- A rate limit: N requests per hour per credential, then 429 with Retry-After.
- Injectable faults: a status, a delay, a dropped connection, a missing `next`, a `next`
  pointing elsewhere (`hostile_next`: another host behind a backslash), a redirect, a body of
  one's choosing; and a latency for every request.
- A request log.
- Each workspace's OIDC discovery document and JWKS (the issuer's keys).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.standins.http import Request, Response, Server
from tests.standins.interrupt import Interrupter
from tests.standins.issuer import BITBUCKET_API, Issuer

# A copy of shared/bitbucket-api/openapi-excerpt.json (a test keeps the two identical), so that
# a clone without shared/ beside it still runs.
SPEC_PATH = Path(__file__).resolve().parent / "openapi-excerpt.json"
SHARED_SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "bitbucket-api" / "openapi-excerpt.json"


def load_spec() -> dict[str, Any]:
    return dict(json.loads(SPEC_PATH.read_text()))


@dataclass
class Route:
    method: str
    template: str
    operation: str
    regex: re.Pattern[str]
    oauth_scopes: tuple[str, ...]
    api_token_scopes: tuple[str, ...]


def _routes(spec: dict[str, Any]) -> list[Route]:
    routes = []
    for template, item in spec["paths"].items():
        pattern = "^/2\\.0" + re.sub(r"\\\{([A-Za-z_]+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
        for method, operation in item.items():
            if not isinstance(operation, dict) or "operationId" not in operation:
                continue
            oauth: tuple[str, ...] = ()
            for requirement in operation.get("security") or []:
                if "oauth2" in requirement:
                    oauth = tuple(requirement["oauth2"])
            api: tuple[str, ...] = ()
            for entry in operation.get("x-atlassian-oauth2-scopes") or []:
                api = tuple(entry.get("scopes", []))
            routes.append(
                Route(method.upper(), template, operation["operationId"], re.compile(pattern), oauth, api)
            )
    return routes


# OAuth scopes imply narrower ones (Bitbucket's documented hierarchy, the part that matters here).
_IMPLIED = {
    "pipeline:variable": {"pipeline"},
    "pipeline:write": {"pipeline"},
    "repository:write": {"repository"},
}


@dataclass
class Fault:
    method: str = ""  # "" = any
    path: str = ""  # a regex searched in the path; "" = any
    kind: str = "status"  # status | delay | drop | no-next | next | redirect | body
    status: int = 500
    seconds: float = 0.0
    times: int = 1
    retry_after: str | None = None
    url: str = ""  # next: the page's `next`; redirect: the Location
    body: bytes = b""  # body: answered with 200 (the OIDC documents too)


@dataclass
class Credential:
    scopes: set[str]
    kind: str  # access-token | api-token | app-password
    used: list[float] = field(default_factory=list)


@dataclass
class Store:
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)  # uuid -> variable (value kept)


@dataclass
class Repo:
    variables: Store = field(default_factory=Store)
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)  # uuid -> env
    env_variables: dict[str, Store] = field(default_factory=dict)


class BitbucketStandIn:
    def __init__(self, rate_limit: int = 1000) -> None:
        self.spec = load_spec()
        self.routes = _routes(self.spec)
        self.issuers: dict[str, Issuer] = {}
        self.oidc_down = False
        self.rate_limit = rate_limit
        self.latency = 0.0
        self.faults: list[Fault] = []
        self.log: list[dict[str, Any]] = []
        self.credentials: dict[str, Credential] = {}
        self.workspaces: dict[str, Store] = {}
        self.repos: dict[tuple[str, str], Repo] = {}
        self._lock = threading.RLock()
        self.interrupter: Interrupter | None = None
        self.reports: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.annotations: dict[tuple[str, str, str, str], dict[str, dict[str, Any]]] = {}
        self._proxy: Server | None = None
        self._server = Server(self._handle)

    # -- life ------------------------------------------------------------------------
    def start(self) -> BitbucketStandIn:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        if self._proxy:
            self._proxy.stop()

    def start_proxy(self, port: int = 29418, host: str = "127.0.0.1") -> str:
        """The Pipelines auth proxy: plain-HTTP requests to api.bitbucket.org sent through it
        get the step's own credentials (here: a token with the repository scope). The port is
        the pipe's fixed one; another loopback ``host`` keeps parallel runs apart. Returns the
        host it listens on (the first one asked for: it is started once)."""
        if self._proxy:
            return self._proxy.host
        self.credentials["Proxy pipelines-auth"] = Credential({"repository", "pipeline"}, "proxy")

        def forward(request: Request) -> Response:
            path = request.path.removeprefix("http://api.bitbucket.org")
            headers = {**request.headers, "authorization": "Proxy pipelines-auth"}
            return self._handle(Request(request.method, path, headers, request.body))

        self._proxy = Server(forward, port=port, host=host).start()
        return host

    @property
    def api_url(self) -> str:
        return f"{self._server.url}/2.0"

    @property
    def requests(self) -> list[tuple[str, str]]:
        return [(entry["method"], entry["path"]) for entry in self.log]

    # -- setup -----------------------------------------------------------------------
    def add_issuer(self, workspace: str) -> Issuer:
        issuer = Issuer(workspace)
        self.issuers[workspace] = issuer
        self.workspaces.setdefault(workspace, Store())
        return issuer

    def resolve(self, url: str) -> str:
        """Where a real api.bitbucket.org URL is served here."""
        return url.replace(BITBUCKET_API, self.api_url, 1)

    def add_repo(self, workspace: str, repo: str, environments: tuple[str, ...] = ()) -> Repo:
        with self._lock:
            self.workspaces.setdefault(workspace, Store())
            record = self.repos.setdefault((workspace, repo), Repo())
            for name in environments:
                env_uuid = "{" + str(uuid.uuid4()) + "}"
                record.environments[env_uuid] = {
                    "type": "deployment_environment",
                    "uuid": env_uuid,
                    "name": name,
                    "slug": re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"),
                }
                record.env_variables[env_uuid] = Store()
            return record

    def access_token(self, *scopes: str) -> str:
        token = "bbat-" + uuid.uuid4().hex + uuid.uuid4().hex
        self.credentials[f"Bearer {token}"] = Credential(set(scopes), "access-token")
        from tests.standins import registry

        registry.record(token)
        return token

    def api_token(self, email: str, *scopes: str) -> str:
        token = "ATATT" + uuid.uuid4().hex + uuid.uuid4().hex
        basic = base64.b64encode(f"{email}:{token}".encode()).decode()
        self.credentials[f"Basic {basic}"] = Credential(set(scopes), "api-token")
        from tests.standins import registry

        registry.record(token)
        return token

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def hostile_next(self, path: str, elsewhere: str) -> str:
        """The knob for a hostile answer (issue 15, item 12): the next page of the next list whose
        path matches ``path`` (a regex) is ``<scheme>://<elsewhere>\\@<this stand-in>/...``, which
        urlsplit reads as this stand-in and urllib3 (which sends the request) as ``elsewhere``
        (host:port). Returns the link."""
        own = urlsplit(self.api_url)
        url = f"{own.scheme}://{elsewhere}\\@{own.netloc}{own.path}/repositories/hostile?page=2"
        self.inject(Fault(method="GET", path=path, kind="next", url=url))
        return url

    def reset(self) -> None:
        with self._lock:
            self.faults.clear()
            self.log.clear()
            self.latency = 0.0
            self.oidc_down = False
            for credential in self.credentials.values():
                credential.used.clear()

    def put(
        self, workspace: str, repo: str, environment: str, key: str, value: str, *, secured: bool
    ) -> None:
        """Set a variable directly (test setup), as if a person had typed it in."""
        with self._lock:
            store = self._store(workspace, repo, environment)
            assert store is not None
            for variable in store.variables.values():
                if variable["key"] == key:
                    variable.update(value=value, secured=secured)
                    return
            new_uuid = "{" + str(uuid.uuid4()) + "}"
            store.variables[new_uuid] = {"uuid": new_uuid, "key": key, "value": value, "secured": secured}

    def environment_uuid(self, workspace: str, repo: str, slug: str) -> str:
        return next(u for u, e in self.repos[(workspace, repo)].environments.items() if e["slug"] == slug)

    def stored(self, workspace: str, repo: str = "", environment: str = "") -> dict[str, dict[str, Any]]:
        """The variables as stored (secured values included), by key: for test assertions."""
        store = self._store(workspace, repo, environment)
        return {} if store is None else {v["key"]: dict(v) for v in store.variables.values()}

    # -- serving ---------------------------------------------------------------------
    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (
                    fault.times > 0
                    and fault.method in ("", method)
                    and (not fault.path or re.search(fault.path, path))
                ):
                    fault.times -= 1
                    return fault
        return None

    def _handle(self, request: Request) -> Response:
        parts = urlsplit(request.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        entry: dict[str, Any] = {
            "method": request.method,
            "path": path,
            "query": parts.query,
            "time": time.time(),
            "headers": dict(request.headers),
            "body": request.body,
        }
        with self._lock:
            self.log.append(entry)
        if self.latency:
            time.sleep(self.latency)
        interrupt = self.interrupter.hit(f"Bitbucket {request.method} {path}") if self.interrupter else None
        if interrupt == "error":
            response = _error(400, "Injected by the crash harness")
        else:
            response = self._serve(request, path, query)
        if interrupt == "kill":
            assert self.interrupter is not None
            self.interrupter.kill()
        entry.update(
            status=response.status, response_body=response.body, response_headers=dict(response.headers)
        )
        return response

    def _serve(self, request: Request, path: str, query: dict[str, list[str]]) -> Response:
        fault = self._take_fault(request.method, path)
        if fault and fault.kind == "drop":
            return Response(drop=True)
        if fault and fault.kind == "delay":
            time.sleep(fault.seconds)
        if fault and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return _error(fault.status, f"Injected fault {fault.status}", headers)
        if fault and fault.kind == "redirect":
            return Response(302, b"", {"Location": fault.url})
        if fault and fault.kind == "body":
            return Response(200, fault.body, {"Content-Type": "application/json"})
        route, params = self._route(request.method, path)
        if route is None:
            return _error(404, "Resource not found")
        if route.operation in ("getOIDCConfiguration", "getOIDCKeys"):
            return self._oidc(route.operation, params["workspace"])
        credential = self.credentials.get(request.headers.get("authorization", ""))
        if credential is None:
            return _error(
                401,
                "Access token expired or invalid"
                if "authorization" in request.headers
                else "Authentication required",
            )
        with self._lock:
            now = time.time()
            credential.used[:] = [t for t in credential.used if now - t < 3600]
            if len(credential.used) >= self.rate_limit:
                wait = int(3600 - (now - credential.used[0])) + 1
                return _error(
                    429, "Rate limit for this resource has been exceeded", {"Retry-After": str(wait)}
                )
            credential.used.append(now)
        required = route.api_token_scopes if credential.kind == "api-token" else route.oauth_scopes
        granted = set(credential.scopes)
        if credential.kind != "api-token":
            for scope in list(granted):
                granted |= _IMPLIED.get(scope, set())
        missing = [s for s in required if s not in granted]
        if missing:
            return _error(
                403,
                "Your credentials lack one or more required privilege scopes.",
                data={"required": list(required), "granted": sorted(credential.scopes)},
            )
        return self._operation(route, params, request, query, fault)

    def _route(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for route in self.routes:
            match = route.regex.match(path)
            if match and route.method == method:
                return route, match.groupdict()
        return None, {}

    def _oidc(self, operation: str, workspace: str) -> Response:
        if self.oidc_down:
            return _error(503, "Service unavailable")
        issuer = self.issuers.get(workspace)
        if issuer is None:
            return _error(404, f"Workspace {workspace} not found")
        document = issuer.discovery() if operation == "getOIDCConfiguration" else issuer.jwks()
        return _json(200, document)

    def _store(self, workspace: str, repo: str = "", environment: str = "") -> Store | None:
        if not repo:
            return self.workspaces.get(workspace)
        record = self.repos.get((workspace, repo))
        if record is None:
            return None
        if environment:
            return record.env_variables.get(environment)
        return record.variables

    def _operation(
        self,
        route: Route,
        params: dict[str, str],
        request: Request,
        query: dict[str, list[str]],
        fault: Fault | None,
    ) -> Response:
        ws, repo = params.get("workspace", ""), params.get("repo_slug", "")
        if route.operation == "getEnvironmentsForRepository":
            record = self.repos.get((ws, repo))
            if record is None:
                return _error(404, f"Repository {ws}/{repo} not found")
            return self._page(list(record.environments.values()), request, query, fault)
        if route.operation in _REPORT_OPERATIONS:
            return self._report(route.operation, params, request)
        env = params.get("environment_uuid", "")
        with self._lock:
            store = self._store(ws, repo, env)
            if store is None:
                what = (
                    f"environment {env}"
                    if env
                    else (f"repository {ws}/{repo}" if repo else f"workspace {ws}")
                )
                return _error(404, f"The {what} does not exist")
            kind = "pipeline_variable" if not env else "deployment_variable"
            variable_uuid = params.get("variable_uuid")
            if request.method == "GET" and not variable_uuid:
                return self._page([_public(v, kind) for v in store.variables.values()], request, query, fault)
            if request.method == "POST":
                body = json.loads(request.body or b"{}")
                key = str(body.get("key", ""))
                if not key:
                    return _error(400, "key is required")
                if any(v["key"] == key for v in store.variables.values()):
                    return _error(409, f"A variable with the key {key} already exists.")
                new_uuid = "{" + str(uuid.uuid4()) + "}"
                new: dict[str, Any] = {
                    "uuid": new_uuid,
                    "key": key,
                    "value": str(body.get("value", "")),
                    "secured": bool(body.get("secured")),
                }
                store.variables[new_uuid] = new
                return _json(
                    201,
                    _public(new, kind),
                    {"Location": f"{self.api_url}{request.path.split('?')[0]}/{new_uuid}"},
                )
            current = store.variables.get(variable_uuid or "")
            if current is None:
                return _error(404, f"Variable {variable_uuid} not found")
            if request.method == "GET":
                return _json(200, _public(current, kind))
            if request.method == "PUT":
                body = json.loads(request.body or b"{}")
                if (
                    "key" in body
                    and body["key"] != current["key"]
                    and any(v["key"] == body["key"] for v in store.variables.values())
                ):
                    return _error(409, f"A variable with the key {body['key']} already exists.")
                current.update({k: body[k] for k in ("key", "value") if k in body})
                # A secured variable stays secured: Bitbucket's UI offers no way back (a secured
                # value is never shown again), and the excerpt documents none. Keeping it
                # secured (rather than refusing the PUT) is the stricter of the two for a client:
                # the write "succeeds", and only a client that checks the answer's `secured`
                # (and finds no value to read back) notices that the id was not made readable.
                current["secured"] = bool(current["secured"] or body.get("secured"))
                return _json(200, _public(current, kind))
            if request.method == "DELETE":
                del store.variables[current["uuid"]]
                return Response(204)
        return _error(405, "Method not allowed")

    def _report(self, operation: str, params: dict[str, str], request: Request) -> Response:
        ws, repo = params["workspace"], params["repo_slug"]
        if (ws, repo) not in self.repos:
            return _error(404, f"Repository {ws}/{repo} not found")
        key = (ws, repo, params["commit"], params["reportId"])
        with self._lock:
            if operation == "createOrUpdateReport":
                body = json.loads(request.body or b"{}")
                missing = [f for f in ("title", "details") if not body.get(f)]
                if missing:
                    return _error(400, f"{', '.join(missing)} required")
                known = self.reports.get(key, {}).get("uuid")
                report = {**body, "type": "report", "uuid": known or "{" + str(uuid.uuid4()) + "}"}
                self.reports[key] = report
                return _json(200, report)
            if operation == "getReport":
                return (
                    _json(200, self.reports[key]) if key in self.reports else _error(404, "Report not found")
                )
            if key not in self.reports:
                return _error(404, "Report not found")
            items = json.loads(request.body or b"[]")
            stored = self.annotations.setdefault(key, {})
            out = []
            for item in items:
                annotation = {**item, "type": "report_annotation", "uuid": "{" + str(uuid.uuid4()) + "}"}
                stored[str(item.get("external_id"))] = annotation
                out.append(annotation)
            return _json(200, out)

    def _page(
        self, items: list[dict[str, Any]], request: Request, query: dict[str, list[str]], fault: Fault | None
    ) -> Response:
        no_next = bool(fault and fault.kind == "no-next")
        try:
            page = max(1, int(query.get("page", ["1"])[0]))
            pagelen = min(100, max(1, int(query.get("pagelen", ["10"])[0])))
        except ValueError:
            return _error(400, "page and pagelen must be numbers")
        start = (page - 1) * pagelen
        body: dict[str, Any] = {
            "page": page,
            "pagelen": pagelen,
            "size": len(items),
            "values": items[start : start + pagelen],
        }
        base = f"{self.api_url}{urlsplit(request.path).path.removeprefix('/2.0')}"
        if start + pagelen < len(items) and not no_next:
            body["next"] = f"{base}?page={page + 1}&pagelen={pagelen}"
        if fault and fault.kind == "next":
            body["next"] = fault.url
        if page > 1:
            body["previous"] = f"{base}?page={page - 1}&pagelen={pagelen}"
        if no_next:
            body.pop("size")  # Bitbucket omits both on some of these lists
        return _json(200, body)


_REPORT_OPERATIONS = ("createOrUpdateReport", "getReport", "bulkCreateOrUpdateAnnotations")


def _public(variable: dict[str, Any], kind: str) -> dict[str, Any]:
    shown = {"type": kind, "uuid": variable["uuid"], "key": variable["key"], "secured": variable["secured"]}
    if not variable["secured"]:
        shown["value"] = variable["value"]
    return shown


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}
    )


def _error(
    status: int, message: str, headers: dict[str, str] | None = None, data: dict[str, Any] | None = None
) -> Response:
    error: dict[str, Any] = {"message": message}
    if data:
        error["data"] = data
    return _json(status, {"type": "error", "error": error}, headers)
