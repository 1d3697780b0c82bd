"""Bitbucket REST client: pipeline variables of a repository, a deployment environment or a
workspace, and a repository's deployment environments; the repositories of a workspace and a
file of a repository (CHECK_SCOPE=workspace).

requests with urllib3's Retry: 429 honours Retry-After, 5xx and dropped connections are
retried, each request within a time cap. Pagination does not trust ``next`` alone (Bitbucket
omits it on some of these lists). A 403 that names the required and granted scopes becomes a
✖ line naming the scope to add.
"""

# Over 300 lines: the Bitbucket REST client (transport with capped retries, pagination, errors
# with the scope to add, variables, environments, auth): one API, one client.

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from pipe import __version__
from pipe.errors import BitbucketError, InputError
from pipe.schema import default
from pipe.urls import check_api_url, origin, same_origin

if TYPE_CHECKING:
    from pipe.network import Network

PAGELEN = 100
MAX_PAGES = 200
# OAuth scopes (access tokens) and the API-token scopes that grant the same.
API_TOKEN_SCOPES = {"pipeline": "read:pipeline:bitbucket", "pipeline:variable": "admin:pipeline:bitbucket"}


@dataclass(frozen=True)
class Variable:
    uuid: str
    key: str
    value: str | None  # None when secured: Bitbucket never returns secured values
    secured: bool


@dataclass(frozen=True)
class Environment:
    uuid: str
    name: str
    slug: str = ""


@dataclass(frozen=True)
class Scope:
    """Where variables live: a repository, one of its deployment environments, or a workspace."""

    workspace: str
    repo: str = ""
    environment_uuid: str = ""
    label: str = field(default="", compare=False)

    @property
    def kind(self) -> str:
        """The object type Bitbucket's schema requires in a variable's body."""
        return "deployment_variable" if self.environment_uuid else "pipeline_variable"

    @property
    def path(self) -> str:
        ws = quote(self.workspace, safe="")
        if not self.repo:
            return f"/workspaces/{ws}/pipelines-config/variables"
        repo = quote(self.repo, safe="")
        if self.environment_uuid:
            env = quote(self.environment_uuid, safe="")
            return f"/repositories/{ws}/{repo}/deployments_config/environments/{env}/variables"
        return f"/repositories/{ws}/{repo}/pipelines_config/variables"

    def __str__(self) -> str:
        if self.label:
            return self.label
        if not self.repo:
            return self.workspace
        suffix = f"@{self.environment_uuid}" if self.environment_uuid else ""
        return f"{self.workspace}/{self.repo}{suffix}"


class CappedRetry(Retry):
    """urllib3 Retry with a time cap per request: a Retry-After or backoff that would end
    past the cap stops retrying, and the last response is returned to the caller."""

    def __init__(
        self, *args: Any, cap_seconds: float = 60.0, started: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.cap_seconds = cap_seconds
        self.started = started

    def new(self, **kw: Any) -> CappedRetry:
        retry = super().new(**kw)
        retry.cap_seconds = self.cap_seconds
        retry.started = self.started
        return retry

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> CappedRetry:
        now = time.monotonic()
        started = self.started if self.started is not None else now
        wait = (self.get_retry_after(response) if response is not None else None) or self.get_backoff_time()
        if now + wait - started > self.cap_seconds:
            raise MaxRetryError(_pool, url or "", error or Exception("Bitbucket retry time cap reached"))
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        retry.started = started
        return retry


def _retry(cap_seconds: float) -> CappedRetry:
    return CappedRetry(
        total=8,
        connect=4,
        read=4,
        status=6,
        backoff_factor=0.5,
        backoff_max=8,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,  # every method: a repeated POST answers 409, which upsert handles
        respect_retry_after_header=True,
        raise_on_status=False,
        cap_seconds=cap_seconds,
    )


class Bitbucket:
    def __init__(
        self,
        base_url: str,
        auth: requests.auth.AuthBase | None,
        *,
        timeout: float = 15,
        retry_cap_seconds: float = 60,
        pool_size: int = 16,
        hook: Callable[[requests.Response], None] | None = None,
        network: Network | None = None,
    ) -> None:
        problem = check_api_url(base_url)
        if problem:
            raise InputError(
                "BITBUCKET_API_URL",
                f"BITBUCKET_API_URL {base_url} {problem}",
                f"Leave BITBUCKET_API_URL unset for {default('BITBUCKET_API_URL')}, or give an https URL.",
            )
        self.base_url = base_url.rstrip("/")
        self.origin = origin(self.base_url)
        self.session = requests.Session()
        # Proxies and the CA bundle come from the settings (pipe.network), never from requests'
        # own reading of the environment (nor ~/.netrc).
        self.session.trust_env = False
        self.network = network
        if network is not None and network.ca_bundle:
            self.session.verify = network.ca_bundle
        self.session.auth = auth
        self.session.headers["User-Agent"] = f"aws-credentials-pipe/{__version__}"
        adapter = HTTPAdapter(
            max_retries=_retry(retry_cap_seconds), pool_connections=pool_size, pool_maxsize=pool_size
        )
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        if hook:
            self.session.hooks["response"].append(lambda response, *a, **k: hook(response))
        self.timeout = timeout

    # -- transport -------------------------------------------------------------------
    def _url(self, path: str, what: str) -> str:
        """A path under the API, or an absolute URL (a page's ``next``) on the API's own
        origin: the token is never sent anywhere else."""
        if path.startswith("/"):
            return f"{self.base_url}{path}"
        if not same_origin(path, self.origin):
            shown = path[:200].encode("unicode_escape").decode("ascii")
            raise BitbucketError(
                f"Bitbucket's answer to {what} pointed to {shown}, outside BITBUCKET_API_URL ({self.base_url}); "
                "the pipe does not send its token there",
                "Check BITBUCKET_API_URL: it must be Bitbucket's API (or a proxy that keeps its links on itself).",
            )
        return path

    def _request(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        url = self._url(path, what)
        if self.network is not None:
            kwargs.setdefault("proxies", self.network.proxies(url))
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.exceptions.ProxyError:
            raise _proxy_error(what) from None
        except requests.RequestException as exc:
            raise BitbucketError(
                f"Bitbucket did not answer {what} ({type(exc).__name__})",
                f"Check BITBUCKET_API_URL ({self.base_url}) and re-run the step.",
            ) from None
        if response.status_code == 407 and self.network is not None:  # from the proxy, not Bitbucket
            raise _proxy_error(what)
        if response.status_code >= 400 and response.status_code not in (404, 409):
            raise _error(response, what)
        return response

    def _pages(self, path: str, what: str) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list. Follows ``next``; when ``next`` is missing but the
        page was full (or ``size`` says more remain), asks for the next page itself."""
        seen: set[str] = set()
        collected = 0
        page = 1
        url: str | None = f"{path}?pagelen={PAGELEN}&page=1"
        while url and page <= MAX_PAGES:
            response = self._request("GET", url, what)
            if response.status_code == 404:
                raise _error(response, what)
            body = response.json()
            values = body.get("values") or []
            fresh = [v for v in values if v.get("uuid") not in seen]
            if values and not fresh:
                return  # the server repeats itself: nothing more to read
            for value in fresh:
                seen.add(str(value.get("uuid")))
                yield value
            collected += len(values)
            pagelen = int(body.get("pagelen") or PAGELEN)
            size = body.get("size")
            page += 1
            if body.get("next"):
                url = urljoin(self._url(url, what), str(body["next"]))
            elif (isinstance(size, int) and collected < size) or (
                size is None and len(values) >= pagelen > 0
            ):
                url = f"{path}?pagelen={PAGELEN}&page={page}"
            else:
                url = None

    # -- variables -------------------------------------------------------------------
    def variables(self, scope: Scope) -> list[Variable]:
        return [_variable(v) for v in self._pages(scope.path, f"listing the variables of {scope}")]

    def create_variable(self, scope: Scope, key: str, value: str, secured: bool) -> Variable | None:
        """POST; None when the key exists already (409)."""
        response = self._request(
            "POST",
            scope.path,
            f"creating {key} in {scope}",
            json=_body(scope, key, value, secured),
        )
        if response.status_code == 409:
            return None
        if response.status_code == 404:
            raise _error(response, f"creating {key} in {scope}")
        return _variable(response.json())

    def update_variable(
        self, scope: Scope, uuid: str, key: str, value: str, secured: bool
    ) -> Variable | None:
        """PUT by uuid; None when the variable is gone (404)."""
        path = f"{scope.path}/{quote(uuid, safe='')}"
        response = self._request(
            "PUT", path, f"updating {key} in {scope}", json=_body(scope, key, value, secured)
        )
        return None if response.status_code == 404 else _variable(response.json())

    def delete_variable(self, scope: Scope, uuid: str) -> bool:
        response = self._request(
            "DELETE", f"{scope.path}/{quote(uuid, safe='')}", f"deleting a variable of {scope}"
        )
        return response.status_code != 404

    def upsert(
        self, scope: Scope, key: str, value: str, secured: bool, existing: list[Variable] | None = None
    ) -> Variable:
        """Set ``key``: PUT by uuid when it exists, POST when it does not; a 409 (someone created
        it meanwhile) or a 404 (someone deleted it) means list again and try once more."""
        current = existing if existing is not None else self.variables(scope)
        for _ in range(3):
            match = next((v for v in current if v.key == key), None)
            written = (
                self.update_variable(scope, match.uuid, key, value, secured)
                if match
                else self.create_variable(scope, key, value, secured)
            )
            if written is not None:
                return written
            current = self.variables(scope)
        raise BitbucketError(f"{key} in {scope} kept changing while it was being written", "Re-run the step.")

    # -- environments ----------------------------------------------------------------
    def environments(self, workspace: str, repo: str) -> list[Environment]:
        path = f"/repositories/{quote(workspace, safe='')}/{quote(repo, safe='')}/environments"
        return [
            Environment(str(e["uuid"]), str(e.get("name", "")), str(e.get("slug", "")))
            for e in self._pages(path, f"listing the deployment environments of {workspace}/{repo}")
        ]

    def environment(self, workspace: str, repo: str, wanted: str) -> Environment:
        """The environment named by name, slug or ``{uuid}`` (case-insensitive for names)."""
        environments = self.environments(workspace, repo)
        for env in environments:
            if (
                wanted in (env.uuid, env.slug)
                or wanted.lower() == env.name.lower()
                or wanted.strip("{}") == env.uuid.strip("{}")
            ):
                return env
        names = ", ".join(e.name for e in environments) or "none"
        raise BitbucketError(
            f"{workspace}/{repo} has no deployment environment {wanted!r} (it has: {names})",
            "Name an environment by its name, slug or {uuid} in TARGETS.",
            status=404,
        )

    # -- repositories and their files (CHECK_SCOPE=workspace) --------------------------
    def repositories(self, workspace: str) -> Iterator[Repository]:
        """Every repository of ``workspace`` the credentials can see, every page."""
        path = f"/repositories/{quote(workspace, safe='')}"
        for raw in self._pages(path, f"listing the repositories of the workspace {workspace}"):
            yield _repository(raw)

    def source_file(self, workspace: str, repo: str, ref: str, file_path: str) -> str | None:
        """A file's text at ``ref`` (a branch name, as Bitbucket accepts it, or a commit); None
        when there is no such file or ref (404). A redirect (a file kept in LFS) or a file
        larger than MAX_SOURCE_BYTES is a BitbucketError: the file could not be read."""
        path = "/repositories/{}/{}/src/{}/{}".format(
            *(quote(part, safe="") for part in (workspace, repo, ref)), quote(file_path, safe="/")
        )
        what = f"reading {file_path} of {workspace}/{repo} at {ref}"
        response = self._request("GET", path, what, allow_redirects=False)
        if response.status_code == 404:
            return None
        if response.status_code != 200 or len(response.content) > MAX_SOURCE_BYTES:
            raise BitbucketError(
                f"Bitbucket answered {what} with {response.status_code} ({len(response.content)} bytes)",
                "Keep bitbucket-pipelines.yml in the repository itself (not in LFS).",
                status=response.status_code,
            )
        return response.content.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Repository:
    slug: str
    full_name: str
    main_branch: str | None  # None: an empty repository has none


MAX_SOURCE_BYTES = 1 << 20


def _repository(raw: Mapping[str, Any]) -> Repository:
    full_name = str(raw.get("full_name") or "")
    slug = str(raw.get("slug") or full_name.rpartition("/")[2] or raw.get("name") or "")
    branch = raw.get("mainbranch")
    name = branch.get("name") if isinstance(branch, dict) else None
    return Repository(slug, full_name or slug, str(name) if name else None)


def _body(scope: Scope, key: str, value: str, secured: bool) -> dict[str, Any]:
    return {"type": scope.kind, "key": key, "value": value, "secured": secured}


def _variable(raw: dict[str, Any]) -> Variable:
    secured = bool(raw.get("secured"))
    value = raw.get("value")
    return Variable(
        str(raw.get("uuid", "")),
        str(raw.get("key", "")),
        None if secured else (value if isinstance(value, str) else None),
        secured,
    )


def _proxy_error(what: str) -> BitbucketError:
    return BitbucketError(
        f"Bitbucket could not be reached for {what} through the proxy (HTTPS_PROXY, HTTP_PROXY)",
        "Check the proxy's URL and its user and password in HTTPS_PROXY or HTTP_PROXY, or name "
        "Bitbucket's host in NO_PROXY to reach it directly.",
        status=407,
    )


def _error(response: requests.Response, what: str) -> BitbucketError:
    status = response.status_code
    try:
        error = (response.json() or {}).get("error") or {}
    except ValueError:
        error = {}
    message = str(error.get("message") or response.reason or "")
    detail = error.get("detail")
    data = detail if isinstance(detail, dict) else (error.get("data") or {})
    required = tuple(str(s) for s in (data.get("required") or []))
    granted = tuple(str(s) for s in (data.get("granted") or []))
    base = f"Bitbucket refused {what} ({status}{': ' + message if message else ''})"
    if status == 401:
        return BitbucketError(
            base,
            "Check BITBUCKET_ACCESS_TOKEN (or ATLASSIAN_ACCOUNT_EMAIL and ATLASSIAN_API_TOKEN): it is wrong, expired or revoked.",
            status=status,
        )
    if status == 403 and required:
        missing = [s for s in required if s not in granted] or list(required)
        api = ", ".join(API_TOKEN_SCOPES.get(s, s) for s in missing)
        return BitbucketError(
            f"{base}; required scope {', '.join(required)}, granted {', '.join(granted) or 'none'}",
            f"Add the scope {', '.join(missing)} to the access token (API tokens: {api}).",
            status=status,
            required=required,
            granted=granted,
        )
    if status == 403:
        return BitbucketError(
            base, "Give the token's owner access to this repository or workspace.", status=status
        )
    if status == 404:
        return BitbucketError(
            base, "Check the workspace, repository and environment names in TARGETS.", status=status
        )
    if status == 429:
        wait = response.headers.get("Retry-After")
        when = f" Bitbucket asks to wait {wait}s." if wait else ""
        return BitbucketError(
            f"{base}: rate limited",
            f"Bitbucket limits API requests per hour.{when} Re-run later, or spread runs out.",
            status=status,
        )
    return BitbucketError(base, "Bitbucket kept failing; re-run the step.", status=status)


class TokenAuth(requests.auth.AuthBase):
    """An access token, sent as ``Authorization: Bearer`` (what bitbucket-pipes-toolkit's
    TokenAuth sends)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def auth_from(values: Mapping[str, str]) -> tuple[requests.auth.AuthBase | None, str]:
    """The credentials for Bitbucket's API, in the order of bitbucket-pipes-toolkit's
    ``Pipe.resolve_auth``: an API token (with its account's e-mail), an access token, then a
    deprecated app password (with a warning that names the replacements); (None, "") when no
    complete pair or token is given. Over the values config stripped, not the environment."""
    email, api_token = values.get("ATLASSIAN_ACCOUNT_EMAIL"), values.get("ATLASSIAN_API_TOKEN")
    token = values.get("BITBUCKET_ACCESS_TOKEN")
    username, password = values.get("BITBUCKET_USERNAME"), values.get("BITBUCKET_APP_PASSWORD")
    if email and api_token:
        return requests.auth.HTTPBasicAuth(email, api_token), ""
    if token:
        return TokenAuth(token), ""
    if username and password:
        return requests.auth.HTTPBasicAuth(username, password), (
            "BITBUCKET_USERNAME/BITBUCKET_APP_PASSWORD: app passwords are deprecated; use an access token "
            "(BITBUCKET_ACCESS_TOKEN) or an API token (ATLASSIAN_ACCOUNT_EMAIL + ATLASSIAN_API_TOKEN)."
        )
    return None, ""
