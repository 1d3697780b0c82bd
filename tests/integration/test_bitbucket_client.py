"""pipe.bitbucket against the Bitbucket stand-in: pagination, upsert, retries, rate limits,
scopes, secured values, environments."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from pipe.bitbucket import Bitbucket, Scope, auth_from
from pipe.bitbucket_target import BitbucketTarget
from pipe.credentials import Credentials
from pipe.errors import BitbucketError, InputError, StateError, TargetError
from pipe.report import RotationReport
from pipe.rotation.publish import probe, publish
from pipe.targets import TargetSpec
from tests.standins.bitbucket import BitbucketStandIn, Fault
from tests.standins.http import Request, Response, Server
from tests.standins.sandbox import Sandbox

WRITE = ("pipeline", "pipeline:variable")


def new_repo(bb: BitbucketStandIn, *environments: str) -> Scope:
    name = f"repo-{uuid.uuid4().hex[:8]}"
    bb.add_repo("acme", name, environments)
    return Scope("acme", name)


def client(bb: BitbucketStandIn, *scopes: str, cap: float = 20) -> Bitbucket:
    from bitbucket_pipes_toolkit import TokenAuth

    return Bitbucket(bb.api_url, TokenAuth(bb.access_token(*(scopes or WRITE))), retry_cap_seconds=cap)


@pytest.fixture
def bb(sandbox: Sandbox) -> BitbucketStandIn:
    return sandbox.bitbucket


def test_lists_every_page(bb: BitbucketStandIn) -> None:
    scope = new_repo(bb)
    api = client(bb)
    for i in range(250):
        api.create_variable(scope, f"VAR_{i}", str(i), secured=False)
    bb.reset()
    assert [v.key for v in api.variables(scope)] == [f"VAR_{i}" for i in range(250)]
    assert [entry["query"] for entry in bb.log] == [
        "pagelen=100&page=1",
        "page=2&pagelen=100",
        "page=3&pagelen=100",
    ]


def test_a_missing_next_does_not_end_the_list(bb: BitbucketStandIn) -> None:
    scope = new_repo(bb)
    api = client(bb)
    for i in range(150):
        api.create_variable(scope, f"VAR_{i}", str(i), secured=False)
    bb.inject(Fault(method="GET", path="pipelines_config/variables$", kind="no-next", times=5))
    assert len(api.variables(scope)) == 150


def test_secured_values_are_stored_but_never_returned(bb: BitbucketStandIn) -> None:
    scope = new_repo(bb)
    api = client(bb)
    written = api.upsert(scope, "AWS_SECRET_ACCESS_KEY", "s3cr3t-value-xyz", secured=True)
    assert written.secured and written.value is None
    assert api.variables(scope)[0].value is None
    assert bb.stored("acme", scope.repo)["AWS_SECRET_ACCESS_KEY"]["value"] == "s3cr3t-value-xyz"


def test_a_put_never_makes_a_secured_variable_unsecured(bb: BitbucketStandIn) -> None:
    """As in Bitbucket's UI: once secured, a variable stays secured; its value is never returned."""
    scope = new_repo(bb)
    api = client(bb)
    api.upsert(scope, "AWS_ACCESS_KEY_ID", "AKIAOLD", secured=True)
    written = api.upsert(scope, "AWS_ACCESS_KEY_ID", "AKIANEW", secured=False)
    assert written.secured and written.value is None
    assert [(v.secured, v.value) for v in api.variables(scope)] == [(True, None)]
    assert bb.stored("acme", scope.repo)["AWS_ACCESS_KEY_ID"] == {
        "uuid": written.uuid,
        "key": "AWS_ACCESS_KEY_ID",
        "value": "AKIANEW",
        "secured": True,
    }


def _target(bb: BitbucketStandIn, scope: Scope) -> BitbucketTarget:
    return BitbucketTarget(
        TargetSpec("repository", f"acme/{scope.repo}", "acme", scope.repo),
        client(bb),
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    )


def test_a_secured_key_id_variable_stops_the_probe_naming_access_key_id_variable(
    bb: BitbucketStandIn,
) -> None:
    """Bitbucket never returns a secured value: the target's key id cannot be read, so the probe
    (before any key is created) stops the run, changing nothing."""
    scope = new_repo(bb)
    bb.put("acme", scope.repo, "", "AWS_ACCESS_KEY_ID", "AKIAOLD", secured=True)
    before = bb.stored("acme", scope.repo)
    bb.reset()
    with pytest.raises(StateError) as raised:
        probe([_target(bb, scope)], concurrency=1, store=None)
    line = raised.value.line()
    assert f"acme/{scope.repo}" in line and "ACCESS_KEY_ID_VARIABLE" in line
    assert "unsecured" in line and "AKIAOLD" not in line
    assert bb.stored("acme", scope.repo) == before
    assert {e["method"] for e in bb.log} == {"GET"}
    with pytest.raises(TargetError) as read:
        _target(bb, scope).read()
    assert "ACCESS_KEY_ID_VARIABLE" in read.value.line()


def test_a_key_id_that_cannot_be_read_back_is_not_published(bb: BitbucketStandIn) -> None:
    """A write whose read-back is empty (the id variable is secured) is a failure, not a success."""
    scope = new_repo(bb)
    bb.put("acme", scope.repo, "", "AWS_ACCESS_KEY_ID", "AKIAOLD", secured=True)
    report = RotationReport("ci", "due", False)
    said: list[str] = []
    with pytest.raises(StateError) as raised:
        publish(
            [_target(bb, scope)],
            Credentials("AKIANEWKEY000001", "new-secret-value-0001"),
            {},
            report,
            concurrency=1,
            say=said.append,
        )
    assert f"acme/{scope.repo}" in raised.value.line() and "ACCESS_KEY_ID_VARIABLE" in raised.value.line()
    assert said == [] and report.targets == {}
    assert "AWS_SECRET_ACCESS_KEY" not in bb.stored("acme", scope.repo)  # refused before any write


def test_an_id_variable_secured_between_the_read_and_the_write_is_a_failure(bb: BitbucketStandIn) -> None:
    scope = new_repo(bb)
    bb.put("acme", scope.repo, "", "AWS_ACCESS_KEY_ID", "AKIAOLD", secured=False)
    target = _target(bb, scope)
    assert target.read() == "AKIAOLD"
    bb.put("acme", scope.repo, "", "AWS_ACCESS_KEY_ID", "AKIAOLD", secured=True)  # someone secures it
    report = RotationReport("ci", "due", False)
    with pytest.raises(StateError) as raised:
        publish(
            [target],
            Credentials("AKIANEWKEY000001", "new-secret-value-0001"),
            {target.spec.text: "AKIAOLD"},
            report,
            concurrency=1,
            say=lambda line: None,
        )
    assert "came back secured" in raised.value.line() and "ACCESS_KEY_ID_VARIABLE" in raised.value.line()
    assert report.targets == {}


def test_upsert_puts_by_uuid_posts_when_missing_and_recovers_from_409(bb: BitbucketStandIn) -> None:
    scope = new_repo(bb)
    api = client(bb)
    created = api.upsert(scope, "AWS_ACCESS_KEY_ID", "AKIA1", secured=False)
    updated = api.upsert(scope, "AWS_ACCESS_KEY_ID", "AKIA2", secured=False)
    assert updated.uuid == created.uuid and updated.value == "AKIA2"
    bb.reset()
    # A stale listing (someone created the key meanwhile): POST answers 409, then list and PUT.
    raced = api.upsert(scope, "AWS_ACCESS_KEY_ID", "AKIA3", secured=False, existing=[])
    assert raced.uuid == created.uuid and raced.value == "AKIA3"
    assert [(e["method"], e["status"]) for e in bb.log] == [("POST", 409), ("GET", 200), ("PUT", 200)]


def test_429_honours_retry_after(bb: BitbucketStandIn) -> None:
    scope = new_repo(bb)
    api = client(bb)
    bb.inject(Fault(method="GET", kind="status", status=429, retry_after="1"))
    started = time.monotonic()
    assert api.variables(scope) == []
    assert time.monotonic() - started >= 1.0


def test_a_retry_after_beyond_the_cap_fails_at_once_with_the_wait(bb: BitbucketStandIn) -> None:
    scope = new_repo(bb)
    api = client(bb, cap=5)
    bb.inject(Fault(method="GET", kind="status", status=429, retry_after="3600"))
    started = time.monotonic()
    with pytest.raises(BitbucketError, match="rate limited") as err:
        api.variables(scope)
    assert time.monotonic() - started < 2 and "3600s" in err.value.hint


def test_5xx_and_dropped_connections_are_retried(bb: BitbucketStandIn) -> None:
    scope = new_repo(bb)
    api = client(bb)
    bb.inject(Fault(method="PUT", kind="status", status=502, times=2))
    bb.inject(Fault(method="POST", kind="drop", times=1))
    api.upsert(scope, "A", "1", secured=False)  # POST dropped, retried: created once
    api.upsert(scope, "A", "2", secured=False)  # PUT 502 twice, then 200
    assert bb.stored("acme", scope.repo)["A"]["value"] == "2"
    assert len(api.variables(scope)) == 1


def test_5xx_stops_at_the_cap(bb: BitbucketStandIn) -> None:
    scope = new_repo(bb)
    api = client(bb, cap=2)
    bb.inject(Fault(kind="status", status=503, times=1000))
    started = time.monotonic()
    with pytest.raises(BitbucketError, match="503"):
        api.variables(scope)
    assert time.monotonic() - started < 4


def test_missing_scope_names_the_scope_to_add(bb: BitbucketStandIn) -> None:
    scope = new_repo(bb)
    api = client(bb, "pipeline")
    with pytest.raises(BitbucketError) as err:
        api.upsert(scope, "A", "1", secured=False)
    assert err.value.status == 403 and err.value.required == ("pipeline:variable",)
    assert (
        "Add the scope pipeline:variable" in err.value.line()
        and "admin:pipeline:bitbucket" in err.value.line()
    )


def test_api_tokens_need_both_read_and_admin_scopes(bb: BitbucketStandIn) -> None:
    scope = new_repo(bb)
    token = bb.api_token("dev@example.com", "admin:pipeline:bitbucket")
    api = Bitbucket(bb.api_url, requests.auth.HTTPBasicAuth("dev@example.com", token))
    with pytest.raises(BitbucketError) as err:
        api.variables(scope)
    assert "read:pipeline:bitbucket" in err.value.line()
    both = bb.api_token("dev@example.com", "read:pipeline:bitbucket", "admin:pipeline:bitbucket")
    api = Bitbucket(bb.api_url, requests.auth.HTTPBasicAuth("dev@example.com", both))
    api.upsert(scope, "A", "1", secured=False)
    assert [v.key for v in api.variables(scope)] == ["A"]


def test_bad_token_and_unknown_repository(bb: BitbucketStandIn) -> None:
    from bitbucket_pipes_toolkit import TokenAuth

    api = Bitbucket(bb.api_url, TokenAuth("not-a-token"))
    with pytest.raises(BitbucketError, match="401") as err:
        api.variables(Scope("acme", "nope"))
    assert "BITBUCKET_ACCESS_TOKEN" in err.value.hint
    with pytest.raises(BitbucketError, match="404"):
        client(bb).variables(Scope("acme", "does-not-exist"))


def test_rate_limit_per_hour(bb: BitbucketStandIn) -> None:
    scope = new_repo(bb)
    limited = BitbucketStandIn(rate_limit=3).start()
    try:
        limited.add_repo("acme", scope.repo)
        api = client(limited, cap=5)
        for _ in range(3):
            api.variables(scope)
        with pytest.raises(BitbucketError, match="rate limited") as err:
            api.variables(scope)
        assert "Retry-After" not in err.value.line() and "wait" in err.value.hint
    finally:
        limited.stop()


def test_environments_by_name_slug_or_uuid(bb: BitbucketStandIn) -> None:
    scope = new_repo(bb, "Production", "Staging EU")
    api = client(bb)
    envs = api.environments("acme", scope.repo)
    assert [e.name for e in envs] == ["Production", "Staging EU"]
    prod = envs[0]
    for wanted in ("Production", "production", prod.uuid, prod.uuid.strip("{}")):
        assert api.environment("acme", scope.repo, wanted) == prod
    assert api.environment("acme", scope.repo, "staging-eu").name == "Staging EU"
    with pytest.raises(BitbucketError, match="Production, Staging EU"):
        api.environment("acme", scope.repo, "qa")
    deploy = Scope("acme", scope.repo, prod.uuid)
    api.upsert(deploy, "AWS_ACCESS_KEY_ID", "AKIA1", secured=False)
    assert bb.stored("acme", scope.repo, prod.uuid)["AWS_ACCESS_KEY_ID"]["value"] == "AKIA1"


def test_workspace_variables(bb: BitbucketStandIn) -> None:
    api = client(bb)
    key = f"WS_{uuid.uuid4().hex[:6]}"
    api.upsert(Scope("acme"), key, "1", secured=False)
    assert bb.stored("acme")[key]["value"] == "1"
    assert api.delete_variable(
        Scope("acme"), next(v.uuid for v in api.variables(Scope("acme")) if v.key == key)
    )


def test_auth_precedence_follows_the_toolkit() -> None:
    auth, warning = auth_from(
        {"ATLASSIAN_ACCOUNT_EMAIL": "a@b.c", "ATLASSIAN_API_TOKEN": "t", "BITBUCKET_ACCESS_TOKEN": "x"}
    )
    assert isinstance(auth, requests.auth.HTTPBasicAuth) and not warning
    auth, warning = auth_from({"BITBUCKET_ACCESS_TOKEN": "x"})
    assert type(auth).__name__ == "TokenAuth" and not warning
    auth, warning = auth_from({"BITBUCKET_USERNAME": "u", "BITBUCKET_APP_PASSWORD": "p"})
    assert isinstance(auth, requests.auth.HTTPBasicAuth) and "deprecated" in warning
    assert auth_from({}) == (None, "")


@pytest.mark.parametrize(
    "half",
    [{"ATLASSIAN_ACCOUNT_EMAIL": "a@b.c"}, {"ATLASSIAN_API_TOKEN": "t"}, {"BITBUCKET_APP_PASSWORD": "p"}],
)
def test_half_an_auth_pair_is_no_credentials(half: dict[str, str]) -> None:
    """Through the toolkit's resolve_auth as well: no complete pair is no auth, never the
    toolkit's process exit."""
    assert auth_from(half) == (None, "")


@pytest.fixture
def elsewhere() -> Iterator[tuple[Server, list[Request]]]:
    """Another loopback server (another origin: another port) that records every request."""
    hits: list[Request] = []

    def record(request: Request) -> Response:
        hits.append(request)
        return Response(200, b'{"values": [], "pagelen": 100}', {"Content-Type": "application/json"})

    server = Server(record).start()
    yield server, hits
    server.stop()


@pytest.mark.parametrize(
    "where",
    [
        "{other}/2.0/repositories/acme/x/pipelines_config/variables?page=2",  # another port
        "https://127.0.0.1:{port}/2.0/repositories/acme/x/pipelines_config/variables?page=2",  # another scheme
        "http://localhost:{port}/2.0/repositories/acme/x/pipelines_config/variables?page=2",  # another host name
        "//127.0.0.1:{other_port}/2.0/x",  # scheme-relative
        # urlsplit reads 127.0.0.1:{port} (after the @), urllib3 (which sends) reads {other_port}
        "http://127.0.0.1:{other_port}\\@127.0.0.1:{port}/2.0/repositories/acme/x/pipelines_config/variables",
        "http://someone@127.0.0.1:{port}/2.0/repositories/acme/x/pipelines_config/variables?page=2",  # user info
        "http://127.0.0.1:{port}/2.0/repositories/acme/x/pipelines_config/variables\x7f?page=2",  # not printable
    ],
)
def test_a_next_outside_the_api_origin_is_not_followed(
    bb: BitbucketStandIn, elsewhere: tuple[Server, list[Request]], where: str
) -> None:
    server, hits = elsewhere
    scope = new_repo(bb)
    api = client(bb)
    api.create_variable(scope, "A", "1", secured=False)
    port = bb.api_url.split(":")[2].split("/")[0]
    url = where.format(other=server.url, port=port, other_port=server.url.rsplit(":", 1)[1])
    bb.inject(Fault(method="GET", path="pipelines_config/variables$", kind="next", url=url))
    with pytest.raises(BitbucketError, match="outside BITBUCKET_API_URL") as err:
        api.variables(scope)
    assert "does not send its token there" in err.value.line()
    assert hits == []


def test_a_next_on_the_api_origin_is_followed(bb: BitbucketStandIn) -> None:
    scope = new_repo(bb)
    api = client(bb)
    api.create_variable(scope, "A", "1", secured=False)
    bb.inject(Fault(method="GET", path="pipelines_config/variables$", kind="next", url="?page=1&pagelen=100"))
    bb.log.clear()
    assert [v.key for v in api.variables(scope)] == ["A"]  # the repeated page ends the list
    assert [e["query"] for e in bb.log] == ["pagelen=100&page=1", "page=1&pagelen=100"]


def test_plain_http_is_refused_except_on_loopback() -> None:
    with pytest.raises(InputError, match="BITBUCKET_API_URL") as err:
        Bitbucket("http://bitbucket.example/2.0", None)
    assert "https" in err.value.line()
    assert Bitbucket("http://127.0.0.1:1/2.0", None).base_url == "http://127.0.0.1:1/2.0"
    assert Bitbucket("https://api.bitbucket.org/2.0/", None).base_url == "https://api.bitbucket.org/2.0"
