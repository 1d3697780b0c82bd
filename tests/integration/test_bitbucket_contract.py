"""Contract: every request our client makes and every response the stand-in gives, checked
against shared/bitbucket-api/openapi-excerpt.json with openapi-core. Responses with a status
the excerpt does not document for the operation (401, 403, 429, 5xx) are checked against its
`error` schema."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_schema_validator import OAS30Validator

from pipe.bitbucket import Bitbucket, Scope
from pipe.errors import BitbucketError
from tests.standins.bitbucket import SHARED_SPEC_PATH, SPEC_PATH, BitbucketStandIn, Fault, load_spec
from tests.standins.sandbox import Sandbox

REAL_BASE = "https://api.bitbucket.org/2.0"
# openapi-core cannot check OAuth 2 schemes (the stand-in checks scopes itself).
pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type")


@dataclass
class Exchange:
    request: requests.PreparedRequest
    response: requests.Response


class Recorder:
    def __init__(self, base: str) -> None:
        self.base = base
        self.exchanges: list[Exchange] = []

    def __call__(self, response: requests.Response) -> None:
        request = response.request.copy()
        request.url = str(request.url).replace(self.base, REAL_BASE, 1)
        self.exchanges.append(Exchange(request, response))


def spec_api() -> OpenAPI:
    return OpenAPI.from_dict(load_spec())


def documented(spec: dict[str, Any], request: requests.PreparedRequest, status: int) -> bool:
    path = str(request.url).removeprefix(REAL_BASE).split("?")[0]
    for template, item in spec["paths"].items():
        regex = (
            "^" + "/".join("[^/]+" if part.startswith("{") else part for part in template.split("/")) + "$"
        )
        if re.match(regex, path) and str(request.method).lower() in item:
            return str(status) in item[str(request.method).lower()]["responses"]
    return False


def check(exchanges: list[Exchange]) -> int:
    spec = load_spec()
    api = spec_api()
    error_schema = OAS30Validator(
        {**spec["components"]["schemas"]["error"], "components": spec["components"]}
    )
    checked = 0
    for exchange in exchanges:
        openapi_request = RequestsOpenAPIRequest(exchange.request)
        api.validate_request(openapi_request)
        status = exchange.response.status_code
        if documented(spec, exchange.request, status):
            api.validate_response(openapi_request, RequestsOpenAPIResponse(exchange.response))
        else:
            error_schema.validate(exchange.response.json())
        checked += 1
    return checked


@pytest.fixture
def bb(sandbox: Sandbox) -> BitbucketStandIn:
    return sandbox.bitbucket


# sha256 of shared/bitbucket-api/openapi-excerpt.json as this repository's copy was taken. The
# copy is checked against it in every clone (shared/ is beside the repository only in CI and the
# main checkout), the shared file too where it is there: a change to either one alone fails.
# To take a new excerpt: copy it to tests/standins/ and put its sha256 here.
EXCERPT_SHA256 = "e3dc8672593bbee191ec3cb610ebfdacbe0abed386803d53f606785146547c58"


def test_the_copy_of_the_excerpt_is_the_pinned_one() -> None:
    assert hashlib.sha256(SPEC_PATH.read_bytes()).hexdigest() == EXCERPT_SHA256, (
        f"{SPEC_PATH.name} changed without the pin: is it still a copy of shared/bitbucket-api/?"
    )
    if SHARED_SPEC_PATH.exists():
        assert hashlib.sha256(SHARED_SPEC_PATH.read_bytes()).hexdigest() == EXCERPT_SHA256, (
            f"{SHARED_SPEC_PATH} changed: copy it to {SPEC_PATH} and update EXCERPT_SHA256"
        )
        assert json.loads(SPEC_PATH.read_text()) == json.loads(SHARED_SPEC_PATH.read_text())


def test_every_request_and_response_follows_the_excerpt(bb: BitbucketStandIn) -> None:
    from bitbucket_pipes_toolkit import TokenAuth

    repo = f"contract-{uuid.uuid4().hex[:6]}"
    bb.add_repo("acme", repo, ("Production",))
    recorder = Recorder(bb.api_url)
    api = Bitbucket(bb.api_url, TokenAuth(bb.access_token("pipeline", "pipeline:variable")), hook=recorder)
    scope = Scope("acme", repo)
    for i in range(12):
        api.create_variable(scope, f"V{i}", str(i), secured=i % 2 == 0)
    api.variables(scope)
    api.upsert(scope, "V1", "changed", secured=False)
    api.upsert(scope, "V99", "new", secured=True, existing=[])  # POST
    api.upsert(scope, "V1", "again", secured=False, existing=[])  # POST 409, list, PUT
    env = api.environment("acme", repo, "production")
    deploy = Scope("acme", repo, env.uuid)
    created = api.upsert(deploy, "AWS_ACCESS_KEY_ID", "AKIA0", secured=False)
    api.update_variable(deploy, created.uuid, "AWS_ACCESS_KEY_ID", "AKIA1", secured=False)
    api.delete_variable(deploy, created.uuid)
    api.update_variable(deploy, created.uuid, "AWS_ACCESS_KEY_ID", "AKIA2", secured=False)  # 404
    workspace = Scope("acme")
    made = api.upsert(workspace, f"WS_{uuid.uuid4().hex[:6]}", "1", secured=True)
    api.delete_variable(workspace, made.uuid)
    with pytest.raises(BitbucketError):
        api.variables(Scope("acme", "no-such-repo"))  # 404
    bb.inject(Fault(method="GET", kind="status", status=503, times=1))
    api.variables(scope)  # a 503, retried under urllib3 (the hook sees the final 200)
    statuses = {e.response.status_code for e in recorder.exchanges}
    assert {200, 201, 204, 404, 409} <= statuses
    assert check(recorder.exchanges) == len(recorder.exchanges) >= 30


def test_error_responses_follow_the_excerpt(bb: BitbucketStandIn) -> None:
    repo = f"contract-{uuid.uuid4().hex[:6]}"
    bb.add_repo("acme", repo)
    path = f"{bb.api_url}/repositories/acme/{repo}/pipelines_config/variables"
    reader = bb.access_token("pipeline")
    exchanges = []
    bb.inject(Fault(method="GET", path=repo, kind="status", status=503, times=1))
    for headers, method, body in [
        ({"Authorization": f"Bearer {reader}"}, "GET", None),  # 503: an injected fault
        ({}, "GET", None),  # 401: no credentials
        (
            {"Authorization": f"Bearer {reader}"},
            "POST",
            {"type": "pipeline_variable", "key": "A", "value": "1"},
        ),  # 403: scope
    ]:
        response = requests.request(method, path, headers=headers, json=body, timeout=10)
        exchanges.append(Exchange(_as_real(response.request, bb.api_url), response))
    limited = BitbucketStandIn(rate_limit=1).start()
    try:
        limited.add_repo("acme", repo)
        token = limited.access_token("pipeline")
        limited_path = f"{limited.api_url}/repositories/acme/{repo}/pipelines_config/variables"
        for _ in range(2):
            response = requests.get(limited_path, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
        exchanges.append(Exchange(_as_real(response.request, limited.api_url), response))
    finally:
        limited.stop()
    assert [e.response.status_code for e in exchanges] == [503, 401, 403, 429]
    assert exchanges[2].response.json()["error"]["data"] == {
        "required": ["pipeline:variable"],
        "granted": ["pipeline"],
    }
    assert check(exchanges) == 4


def _as_real(request: requests.PreparedRequest, base: str) -> requests.PreparedRequest:
    copy = request.copy()
    copy.url = str(copy.url).replace(base, REAL_BASE, 1)
    return copy


def exchanges_from_log(log: list[dict[str, Any]]) -> list[Exchange]:
    """The stand-in's request log as request/response pairs, on the spec's server URL."""
    from requests.structures import CaseInsensitiveDict

    out = []
    for entry in log:
        url = (
            REAL_BASE + entry["path"].removeprefix("/2.0") + (f"?{entry['query']}" if entry["query"] else "")
        )
        request = requests.Request(
            entry["method"], url, headers=entry["headers"], data=entry["body"] or None
        ).prepare()
        response = requests.Response()
        response.status_code = entry["status"]
        response._content = entry["response_body"]
        response.headers = CaseInsensitiveDict(entry["response_headers"])
        response.request = request
        out.append(Exchange(request, response))
    return out


def test_a_rotations_traffic_follows_the_excerpt(sandbox: Sandbox, clone: Any) -> None:
    """Everything the pipe process sent to Bitbucket during rotations (repository, deployment
    and workspace targets), and every answer, against the excerpt."""
    from tests.integration.test_rotate import World

    world = World(sandbox, clone)
    world.targets.append("acme")
    world.seed()
    bb = sandbox.bitbucket
    bb.reset()
    assert world.run("contract-rotate", FORCE_ROTATE="true").returncode == 0
    assert world.run("contract-rotate-2", FORCE_ROTATE="true").returncode == 1  # two active keys: reads only
    exchanges = exchanges_from_log(bb.log)
    methods = {e.request.method for e in exchanges}
    assert {"GET", "PUT"} <= methods and len(exchanges) >= 10
    assert check(exchanges) == len(exchanges)


def test_the_workspace_reads_follow_the_excerpt(bb: BitbucketStandIn) -> None:
    """CHECK_SCOPE=workspace's reads: the repository listing page by page, src of the pipeline
    file (raw bytes: the excerpt documents them in prose, its 200 schema is the directory
    listing's, so a file's answer is held to the prose: attachment, not JSON), a 404 on a file
    that is not there, and a 403 on a forbidden repository's variables."""
    workspace = f"contract-{uuid.uuid4().hex[:6]}"
    for index in range(7):
        bb.add_repo(workspace, f"r{index}", ("Production",) if index == 0 else ())
    bb.put_file(workspace, "r0", "bitbucket-pipelines.yml", "pipelines: {}\n")
    bb.add_repo(workspace, "locked").forbidden = True
    bb.repository_pagelen = 3
    recorder = Recorder(bb.api_url)
    api = Bitbucket(bb.api_url, _token(bb.access_token("repository", "pipeline")), hook=recorder)
    try:
        repositories = list(api.repositories(workspace))
        assert [r.slug for r in repositories] == ["locked", *(f"r{i}" for i in range(7))]
        assert {r.main_branch for r in repositories} == {"main"}
        assert api.source_file(workspace, "r0", "main", "bitbucket-pipelines.yml") == "pipelines: {}\n"
        assert api.source_file(workspace, "r1", "main", "bitbucket-pipelines.yml") is None
        with pytest.raises(BitbucketError) as refused:
            api.variables(Scope(workspace, "locked"))
        assert refused.value.status == 403
    finally:
        bb.repository_pagelen = 100
    listing = [
        e for e in recorder.exchanges if e.request.path_url.startswith(f"/2.0/repositories/{workspace}?")
    ]
    assert len(listing) == 3  # 8 repositories, 3 to a page, by `next`
    raw = [e for e in recorder.exchanges if e.response.status_code == 200 and "/src/" in str(e.request.url)]
    assert len(raw) == 1 and raw[0].response.headers["Content-Disposition"].startswith("attachment")
    assert not raw[0].response.headers["Content-Type"].startswith("application/json")
    api_spec = spec_api()
    for exchange in raw:
        api_spec.validate_request(RequestsOpenAPIRequest(exchange.request))
    rest = [e for e in recorder.exchanges if e not in raw]
    assert {e.response.status_code for e in rest} == {200, 403, 404}
    assert check(rest) == len(rest)


def _token(token: str) -> Any:
    from bitbucket_pipes_toolkit import TokenAuth

    return TokenAuth(token)
