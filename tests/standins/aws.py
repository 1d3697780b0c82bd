"""AWS on loopback: moto in server mode, behind a front that adds what moto lacks.

moto accepts any web identity token and any access key. The front, in front of moto:
- checks every request against botocore's service model, as the service itself does
  (`tests/standins/servicemodel.py`: `pattern`, `min`, `max`, `enum`, `required` at any depth,
  plus a few documented rules the models lack), and answers AWS's own validation error;
- checks AssumeRoleWithWebIdentity the way STS does: the token is a JWT; an IAM OIDC provider
  exists for its issuer; the signature verifies against the issuer's JWKS (fetched over HTTP
  from the Bitbucket stand-in); it has not expired (by the front's clock); its aud is one of
  the provider's client ids; the role's trust policy admits it (StringEquals / StringLike /
  their Not and IfExists forms, ForAnyValue/ForAllValues, Null on <provider>:aud and :sub,
  and on the request's aws:SourceIp and sts:RoleSessionName; IpAddress / NotIpAddress);
  DurationSeconds fits the role's MaxSessionDuration. Failures use AWS's codes and messages.
- checks AssumeRole the way STS does (moto assumes any role, existing or not, in any account):
  the role exists, its trust policy admits the caller (an `AWS` principal: the account, its
  root, the user, the role or the role session; `sts:ExternalId`, `aws:PrincipalArn`,
  `aws:PrincipalAccount` and `aws:PrincipalTag/*` (the caller's user's or role's tags) in
  conditions), DurationSeconds fits MaxSessionDuration, and at most
  one hour when a role session assumes a role (role chaining). Else AccessDenied.
- records what each AssumeRole* call asked for (`assume_calls`: the role, the session name,
  the session `Policy` and `PolicyArns`, the duration, the external id).
- refuses long-lived access keys (AKIA...) that do not exist or are inactive.
- a test knob, `session_lifetime`: AssumeRole* sessions then end that many seconds after they
  are issued (the answer's Expiration says so), and the front refuses their keys afterwards
  with `ExpiredToken`, as STS does, so the SDK's refresh shows within seconds.
- injects faults by action: AWS errors, dropped connections, delays, another identity, and lost
  answers (the call is served, then the connection dropped: AWS did it, the caller never hears;
  or, `lost500`, the call is served and the answer is a 500 `InternalFailure`, which botocore's
  standard mode retries: the retry meets what the first attempt did, e.g. `LimitExceeded` for
  a third key).
- refuses a user's 51st tag (TagUser; CreateUser's list is bounded by the model) with IAM's `LimitExceeded`
  "Cannot exceed quota for TagsPerUser: 50" (moto accepts any number); a key already there
  being overwritten does not count.
- answers PutSecretValue with the ClientRequestToken of an existing version as Secrets Manager
  does: the same value is an idempotent repeat that changes nothing (no staging label moves,
  whatever VersionStages says; moto moves them when the version is AWSPENDING), another value
  is `ResourceExistsException`.
- answers sts:GetAccessKeyInfo as STS does for any id: moto's keys (users' and role
  sessions') are of their account, any other id of the account it encodes (moto answers the
  caller's account for an id it does not know);
- records every secret that passes through it (for the leak check) and every request.
- serves the IAM credential report as IAM does (moto's is generated live at every read, dated
  2015): GenerateCredentialReport starts a report (STARTED, then COMPLETE once ready, after
  `report_delay` seconds) and IAM keeps it for four hours: GetCredentialReport answers that
  snapshot with its real GeneratedTime, however the account changed since
  (`expire_credential_reports()` is what waiting four hours does);
- runs AWS's clock `clock_offset` seconds ahead of this machine's (the runner's; negative:
  behind): the dates AWS answers (a new key's CreateDate, a key's last use, the credential
  report's GeneratedTime, a session's Expiration, the `Date` header) and the web identity token's
  expiry are by that clock, and SigV4 refuses a request signed more than 5 minutes away from it
  (`SignatureDoesNotMatch` / `InvalidSignatureException`: "Signature expired"), as AWS does;
- keeps every SES v2 SendEmail it answered (`emails`: sender, recipients, subject, and both the
  text and the HTML part; moto keeps one part only).
Several accounts: a request acts in the account of its key (moto's rule), or in the one an
`x-moto-account-id` header names (`account_client`, for tests' set-up).

Key ages and last use live in moto's own backend (moto runs in this process), so
ListAccessKeys, GetAccessKeyLastUsed and the IAM credential report agree: `age()` sets them.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.client
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

import boto3
import jwt
import requests
from moto.server import ThreadedMotoServer

from tests.standins import registry, ssm_kms, trust
from tests.standins.calls import CallRecorder
from tests.standins.http import Request, Response, Server
from tests.standins.interrupt import Interrupter
from tests.standins.servicemodel import Call, Catalog, Refusal

logging.getLogger("werkzeug").setLevel(logging.WARNING)

ACCOUNT = "123456789012"
STUB_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_STATUS = {
    "AccessDenied": 403,
    "InvalidClientTokenId": 403,
    "ExpiredToken": 403,
    "ConcurrentModification": 409,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
}
SIGV4_SKEW = 300.0  # seconds between a request's X-Amz-Date and AWS's clock that SigV4 accepts
_SECRET_TAGS = re.compile(rb"<(SecretAccessKey|SessionToken)>([^<]+)</")


@dataclass
class Fault:
    action: str
    # error | drop | delay | identity | lost (served, then the answer dropped) |
    # lost500 (served, then answered 500 InternalFailure: botocore's standard mode retries it)
    kind: str = "error"
    code: str = ""
    message: str = ""
    times: int = 1
    seconds: float = 0.0
    arn: str = ""
    skip: int = 0  # serve this many matching calls first
    unless_key: str = ""  # match only calls not signed by this access key


def error_response(code: str, message: str, status: int | None = None) -> Response:
    kind = "Receiver" if (status or _STATUS.get(code, 400)) >= 500 else "Sender"
    body = (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n'
        f"  <Error>\n    <Type>{kind}</Type>\n    <Code>{escape(code)}</Code>\n"
        f"    <Message>{escape(message)}</Message>\n  </Error>\n"
        f"  <RequestId>{uuid.uuid4()}</RequestId>\n</ErrorResponse>\n"
    )
    return Response(status or _STATUS.get(code, 400), body.encode(), {"Content-Type": "text/xml"})


def json_error_response(code: str, message: str, status: int = 400, rest: bool = False) -> Response:
    """An error of the JSON protocols (SSM, Secrets Manager, Organizations; rest-json: SES v2)."""
    body = json.dumps({"__type": code, "message": message}).encode()
    if rest:
        return Response(status, body, {"Content-Type": "application/json", "x-amzn-ErrorType": code})
    return Response(status, body, {"Content-Type": "application/x-amz-json-1.1"})


def refusal_response(call: Call, refusal: Refusal) -> Response:
    if call.protocol == "query":
        return error_response(refusal.code, refusal.message, refusal.status)
    return json_error_response(
        refusal.code, refusal.message, refusal.status, rest=call.protocol == "rest-json"
    )


@functools.lru_cache(maxsize=1)
def catalog() -> Catalog:
    return Catalog()


@dataclass(frozen=True)
class Caller:
    """Who signed a request, in every form a trust policy's `AWS` principal may name it."""

    arn: str  # as GetCallerIdentity says it
    account: str
    principal_arn: str  # aws:PrincipalArn: the user, or the role of a role session
    role_session: bool = False

    @property
    def forms(self) -> list[str]:
        return [self.arn, self.principal_arn, f"arn:aws:iam::{self.account}:root", self.account]


def _principal_tags(caller: Caller) -> dict[str, str]:
    """aws:PrincipalTag/<key>: the tags of the caller's IAM user, or of the role of its role
    session (the pipe passes no session tags), as IAM sets them."""
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import iam_backends

    match = re.fullmatch(r"arn:aws:iam::(\d{12}):(role|user)/(?:[^/]+/)*([^/]+)", caller.principal_arn)
    if not match:
        return {}
    backend = iam_backends[match.group(1)]["aws"]
    try:
        if match.group(2) == "role":
            tags = list(backend.get_role(match.group(3)).tags)
        else:
            tags = backend.tagger.list_tags_for_resource(backend.get_user(match.group(3)).arn)["Tags"]
    except NotFoundException:
        return {}
    return {f"aws:PrincipalTag/{t['Key']}": str(t["Value"]) for t in tags}


class AwsStandIn:
    def __init__(self, resolve_url: Any = lambda url: url) -> None:
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._resolve = resolve_url
        self._lock = threading.Lock()
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []  # (action, access key id)
        # Every call in detail, while tests.standins.calls.recording() has one attached.
        self.recorder: CallRecorder | None = None
        self.clock_offset = 0.0  # seconds AWS's clock runs ahead of this machine's (see aws_now)
        # IAM's eventual consistency: a new key fails for this many seconds after creation.
        self.new_key_delay = 0.0
        self.created: dict[str, float] = {}  # key id -> when the front saw it created
        self.issued: dict[str, str] = {}  # key id -> the secret IAM issued with it
        # What each AssumeRole / AssumeRoleWithWebIdentity call asked for (parameters by name,
        # as the model parses them: Policy as sent, PolicyArns as [{"arn": ...}]), token removed.
        self.assume_calls: list[dict[str, Any]] = []
        self.catalog = catalog()
        self.interrupter: Interrupter | None = None
        # Test knob: sessions issued by AssumeRole* end this many seconds later (None: as asked).
        self.session_lifetime: float | None = None
        self.session_ends: dict[str, float] = {}  # session key id -> when the front refuses it
        # account -> (generated, ready, CSV): the credential reports IAM keeps (four hours).
        self.credential_reports: dict[str, tuple[float, float, str]] = {}
        self.report_delay = 0.0  # seconds a credential report takes to generate
        self.emails: list[dict[str, Any]] = []  # every SES v2 SendEmail answered, both parts
        self._server = Server(self._handle, clock=self.aws_now)

    def start(self) -> AwsStandIn:
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.moto_url = f"http://{host}:{port}"
        self._server.start()
        self.iam = boto3.client(
            "iam", endpoint_url=self.moto_url, region_name="us-east-1", **STUB_CREDENTIALS
        )
        return self

    def stop(self) -> None:
        self._server.stop()
        self._moto.stop()

    @property
    def url(self) -> str:
        return self._server.url

    def client(self, service: str, region: str = "eu-west-1", **credentials: str) -> Any:
        """A client through the front (so secrets it returns are recorded)."""
        return boto3.client(
            service, endpoint_url=self.url, region_name=region, **(credentials or STUB_CREDENTIALS)
        )

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def forget_requests(self) -> None:
        with self._lock:
            self.requests.clear()
            self.assume_calls.clear()

    def calls(self, action: str) -> int:
        return sum(1 for a, _ in self.requests if a == action)

    def reset(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()
            self.assume_calls.clear()
            self.clock_offset = 0.0
            self.new_key_delay = 0.0
            self.session_lifetime = None

    def age(self, key_id: str, days: float, last_used_days_ago: float | None = None) -> None:
        """Make a key ``days`` old, and last used that many days ago (or never), in moto's own
        backend: ListAccessKeys, GetAccessKeyLastUsed and the credential report
        (GenerateCredentialReport / GetCredentialReport: `access_key_N_last_rotated`,
        `access_key_N_last_used_date`) all read it from there. A later signed call with the key
        stamps its use again, as IAM does."""
        from moto.iam.models import AccessKeyLastUsed

        key = self._moto_key(key_id)
        now = datetime.fromtimestamp(self.aws_now(), UTC).replace(tzinfo=None)  # moto: naive UTC
        key.create_date = now - timedelta(days=days)
        key.last_used = (
            None
            if last_used_days_ago is None
            else AccessKeyLastUsed(
                timestamp=now - timedelta(days=last_used_days_ago), service="iam", region="us-east-1"
            )
        )
        if key.last_used is not None:
            key.last_used.shifted = True  # by AWS's clock already (see _on_aws_clock)

    @staticmethod
    def _moto_key(key_id: str) -> Any:
        from moto.iam.models import iam_backends

        for _, partitions in list(iam_backends.items()):
            key = partitions["aws"].access_keys.get(key_id)
            if key is not None:
                return key
        raise KeyError(f"moto has no access key {key_id}")

    # -- the front -------------------------------------------------------------------
    def _take_fault(self, action: str, key_id: str = "") -> Fault | None:
        """The first fault for ``action`` (``*``: any) left, unless it skips this call."""
        with self._lock:
            for fault in self.faults:
                if fault.action not in (action, "*") or fault.times <= 0:
                    continue
                if fault.unless_key and key_id == fault.unless_key:
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    return None
                fault.times -= 1
                return fault
        return None

    def _handle(self, request: Request) -> Response:
        params: dict[str, list[str]] = {}
        if "x-www-form-urlencoded" in request.headers.get("content-type", ""):
            params = parse_qs(request.body.decode())
        action = params.get("Action", [""])[0] or request.headers.get("x-amz-target", "").split(".")[-1]
        if not action:  # a REST protocol (SES v2): the operation is in the method and the path
            parsed = self.catalog.parse(request.method, request.path, request.headers, request.body)
            action = parsed.operation.name if parsed else ""
        key_match = re.search(r"Credential=([^/]+)/", request.headers.get("authorization", ""))
        key_id = key_match.group(1) if key_match else ""
        with self._lock:
            self.requests.append((action, key_id))
        interrupt = self.interrupter.hit(f"AWS {action}") if self.interrupter else None
        if interrupt == "error":
            if "x-amz-target" in request.headers:  # the JSON protocol (Secrets Manager, SSM)
                return json_error_response("AccessDeniedException", "Injected by the crash harness")
            return error_response("AccessDenied", "Injected by the crash harness")
        if interrupt == "kill":
            response = self._serve(request, params, action, key_id, None)
            assert self.interrupter is not None
            self.interrupter.kill()
            return response
        recorder = self.recorder
        entry = (
            recorder.begin(
                self.catalog.parse(request.method, request.path, request.headers, request.body),
                key_id,
                action,
            )
            if recorder
            else None
        )
        # The crash harness's lost500: this call takes effect and its answer is a 500.
        fault = Fault(action, kind="lost500") if interrupt == "lost500" else self._take_fault(action, key_id)
        response = self._serve(request, params, action, key_id, fault)
        call = self.catalog.parse(request.method, request.path, request.headers, request.body)
        if recorder and entry:
            recorder.finish(entry, response.status)
        if fault and fault.kind == "lost":  # AWS did it; the answer never reaches the caller
            return Response(drop=True)
        if fault and fault.kind == "lost500":  # AWS did it; the caller hears a 500 and retries
            failure = Refusal(500, "InternalFailure", "An internal error occurred.")
            if call is None:
                return error_response(failure.code, failure.message, failure.status)
            return refusal_response(call, failure)
        return response

    def _serve(
        self, request: Request, params: dict[str, list[str]], action: str, key_id: str, fault: Fault | None
    ) -> Response:
        if fault and fault.kind == "error":  # in the protocol of the call's service
            if "x-amz-target" in request.headers:
                return json_error_response(fault.code, fault.message or fault.code)
            return error_response(fault.code, fault.message or fault.code)
        if fault and fault.kind == "drop":
            return Response(drop=True)
        if fault and fault.kind == "delay":
            time.sleep(fault.seconds)
        call = self.catalog.parse(request.method, request.path, request.headers, request.body)
        if call and call.operation.name in ("AssumeRole", "AssumeRoleWithWebIdentity"):
            asked = {k: v for k, v in call.params.items() if k != "WebIdentityToken"}
            with self._lock:
                self.assume_calls.append({"Action": call.operation.name, **asked})
        expired = self._expired_session(key_id) or self._signed_too_far(request, key_id, call)
        if expired:
            return expired
        if key_id.startswith("AKIA"):
            young = time.time() < self.created.get(key_id, 0) + self.new_key_delay
            if young or not self._key_active(key_id):
                return error_response(
                    "InvalidClientTokenId", "The security token included in the request is invalid."
                )
        refusal = self.catalog.check(call) if call else None
        if call and refusal:
            return refusal_response(call, refusal)
        if call and call.service == "iam" and call.operation.name == "TagUser":
            too_many = self._too_many_user_tags(call, self._account(request, key_id))
            if too_many:
                return too_many
        if call and call.service == "ssm":
            invalid_key = ssm_kms.unknown_key(call, self._account(request, key_id))
            if invalid_key:
                return json_error_response(*invalid_key)
        if call and call.service == "secretsmanager" and call.operation.name == "PutSecretValue":
            repeat = self._repeated_secret_version(call, self._account(request, key_id))
            if repeat:
                return repeat
        if call and call.service == "iam" and call.operation.name.endswith("CredentialReport"):
            return self._credential_report(call.operation.name, self._account(request, key_id))
        if call and call.service == "sts" and call.operation.name == "GetAccessKeyInfo":
            return self._access_key_info(str(call.params.get("AccessKeyId", "")))
        if action == "AssumeRoleWithWebIdentity":
            denied = self._web_identity(params, request.client)
            if denied:
                return denied
        if call and call.operation.name == "AssumeRole" and call.service == "sts":
            denied = self._assume_role(call, key_id)
            if denied:
                return denied
        response = self._forward(request)
        if action == "CreateAccessKey" and response.status == 200:
            created = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", response.body)
            secret = re.search(rb"<SecretAccessKey>([^<]+)</SecretAccessKey>", response.body)
            if created and secret:
                self.created[created.group(1).decode()] = time.time()
                self.issued[created.group(1).decode()] = secret.group(1).decode()
        if action in ("AssumeRoleWithWebIdentity", "AssumeRole") and response.status == 200:
            self._shorten_session(response)
        if response.status == 200:
            self._on_aws_clock(action, key_id, response)
        if action in ("AssumeRoleWithWebIdentity", "AssumeRole", "CreateAccessKey", "GetSessionToken"):
            registry.record(*(m.group(2).decode() for m in _SECRET_TAGS.finditer(response.body)))
        if fault and fault.kind == "identity":
            response.body = re.sub(rb"<Arn>[^<]*</Arn>", f"<Arn>{fault.arn}</Arn>".encode(), response.body)
        if call and call.service == "ssm" and response.status == 200:
            ssm_kms.default_key_on_overwrite(call, self._account(request, key_id))
        if call and call.service == "sesv2" and call.operation.name == "SendEmail" and response.status == 200:
            self._record_email(call, self._account(request, key_id))
        return response

    @staticmethod
    def _too_many_user_tags(call: Call, account: str) -> Response | None:
        """IAM's quota of 50 tags per user: the user's tags, with the new keys, must stay within
        it (a key already there is overwritten and does not count)."""
        from moto.iam.models import iam_backends

        keys = {str(tag.get("Key", "")) for tag in call.params.get("Tags") or []}
        if not keys:
            return None
        backend = iam_backends[account]["aws"]
        user = backend.users.get(str(call.params.get("UserName", "")))
        if user is None:
            return None  # moto answers NoSuchEntity
        existing = {str(tag["Key"]) for tag in backend.tagger.list_tags_for_resource(user.arn)["Tags"]}
        if len(existing | keys) > 50:
            return error_response("LimitExceeded", "Cannot exceed quota for TagsPerUser: 50", 409)
        return None

    @staticmethod
    def _repeated_secret_version(call: Call, account: str) -> Response | None:
        """PutSecretValue naming a version that exists: "If a version with this value already
        exists and the version SecretString and SecretBinary values are the same as those in the
        request, then the request is ignored. [...] If a version with this value already exists
        and that version's SecretString and SecretBinary values are different from those in the
        request, then the request fails" (the API reference, ClientRequestToken)."""
        from moto.secretsmanager.models import secretsmanager_backends

        token = call.params.get("ClientRequestToken")
        if not token:
            return None
        backend = secretsmanager_backends[account][call.region]
        name = str(call.params.get("SecretId", ""))
        if name not in backend.secrets:
            return None
        secret = backend.secrets[name]
        version = getattr(secret, "versions", {}).get(token)
        if version is None:
            return None
        binary = call.params.get("SecretBinary")
        same = version.get("secret_string") == call.params.get("SecretString") and (
            version.get("secret_binary") == (base64.b64encode(binary).decode() if binary else None)
        )
        if not same:
            return json_error_response(
                "ResourceExistsException",
                f"You can't use ClientRequestToken {token} because that value is already in use for a "
                f"version of secret {secret.arn}.",
            )
        answer = {
            "ARN": secret.arn,
            "Name": secret.name,
            "VersionId": token,
            "VersionStages": list(version.get("version_stages", [])),
        }
        return Response(200, json.dumps(answer).encode(), {"Content-Type": "application/x-amz-json-1.1"})

    def _shorten_session(self, response: Response) -> None:
        """With `session_lifetime`: the session ends that many seconds from now."""
        if self.session_lifetime is None:
            return
        ends = time.time() + self.session_lifetime
        stamp = datetime.fromtimestamp(ends + self.clock_offset, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        response.body = re.sub(
            rb"<Expiration>[^<]*</Expiration>", f"<Expiration>{stamp}</Expiration>".encode(), response.body
        )
        key = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", response.body)
        if key:
            with self._lock:
                self.session_ends[key.group(1).decode()] = ends

    def _expired_session(self, key_id: str) -> Response | None:
        ends = self.session_ends.get(key_id)
        if ends is not None and time.time() >= ends:
            return error_response("ExpiredToken", "The security token included in the request is expired")
        return None

    def _forward(self, request: Request) -> Response:
        target = urlparse(self.moto_url)
        connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=30)
        headers = {
            k: v for k, v in request.headers.items() if k not in ("host", "content-length", "connection")
        }
        connection.request(request.method, request.path, body=request.body, headers=headers)
        answer = connection.getresponse()
        body = answer.read()
        connection.close()
        keep = {k: v for k, v in answer.getheaders() if k.lower() in ("content-type", "x-amzn-requestid")}
        return Response(answer.status, body, keep)

    def works(self, key_id: str | None, secret: str | None) -> bool:
        """The oracle of the rotation tests: is this a pair AWS would accept?"""
        return bool(key_id) and self.issued.get(key_id or "") == secret and self._key_active(key_id or "")

    def keys(self, user: str) -> dict[str, str]:
        """The user's keys and their status, straight from moto."""
        return {
            k["AccessKeyId"]: k["Status"]
            for k in self.iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        }

    def _key_active(self, key_id: str) -> bool:
        """Is the key there and active, in whichever account it is (moto's own backend)?"""
        try:
            return bool(self._moto_key(key_id).status == "Active")
        except KeyError:
            return False

    def _provider(self, provider: str) -> dict[str, Any] | None:
        for entry in self.iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
            if entry["Arn"].split(":oidc-provider/", 1)[1] == provider:
                return dict(self.iam.get_open_id_connect_provider(OpenIDConnectProviderArn=entry["Arn"]))
        return None

    def _jwks(self, issuer: str) -> dict[str, Any] | None:
        try:
            discovery = requests.get(self._resolve(f"{issuer}/.well-known/openid-configuration"), timeout=5)
            discovery.raise_for_status()
            keys = requests.get(self._resolve(discovery.json()["jwks_uri"]), timeout=5)
            keys.raise_for_status()
            return dict(keys.json())
        except (requests.RequestException, ValueError, KeyError):
            return None

    def _web_identity(self, params: dict[str, list[str]], client: str = "") -> Response | None:
        token = params.get("WebIdentityToken", [""])[0]
        role_arn = params.get("RoleArn", [""])[0]
        duration = int(params.get("DurationSeconds", ["3600"])[0])
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return error_response(
                "InvalidIdentityToken",
                "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)",
            )
        issuer = str(claims.get("iss", ""))
        provider_name = issuer.split("://", 1)[-1].rstrip("/")
        provider = self._provider(provider_name)
        if provider is None:
            return error_response(
                "InvalidIdentityToken", f"No OpenIDConnect provider found in your account for {issuer}"
            )
        jwks = self._jwks(issuer)
        if jwks is None:
            return error_response(
                "InvalidIdentityToken",
                "Couldn't retrieve verification key from your identity provider,  please reference "
                "AssumeRoleWithWebIdentity documentation for requirements",
            )
        try:
            key = next(k for k in jwt.PyJWKSet.from_dict(jwks).keys if k.key_id == header.get("kid"))
            jwt.decode(
                token, key.key, algorithms=["RS256"], options={"verify_aud": False, "verify_exp": False}
            )
        except (StopIteration, jwt.PyJWTError):
            return error_response(
                "InvalidIdentityToken",
                "The web identity token that was passed could not be validated by AWS. Get a new identity "
                "token from the identity provider and then retry the request.",
            )
        now = int(self.aws_now())
        exp = int(claims.get("exp", 0))
        if exp <= now:
            return error_response(
                "ExpiredTokenException",
                f"Token expired: current date/time {now} must be before the expiration date/time{exp}",
            )
        audiences = claims.get("aud")
        audience_list = audiences if isinstance(audiences, list) else [audiences]
        if not set(audience_list) & set(provider.get("ClientIDList", [])):
            return error_response("InvalidIdentityToken", "Incorrect token audience")
        denied = error_response("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
        match = re.match(r"^arn:aws:iam::(\d{12}):role/(?:.*/)?([^/]+)$", role_arn)
        if not match:
            return denied
        try:
            role = self.iam.get_role(RoleName=match.group(2))["Role"]
        except Exception:
            return denied
        policy = role["AssumeRolePolicyDocument"]
        if isinstance(policy, str):
            policy = json.loads(policy)
        # The keys STS sets for a web identity: the provider's aud and sub, and the request's own
        # (the caller's address, the session name asked for).
        context = {
            f"{provider_name}:aud": str(audience_list[0]),
            f"{provider_name}:sub": str(claims.get("sub", "")),
            "aws:SourceIp": client,
            "sts:RoleSessionName": params.get("RoleSessionName", [""])[0],
        }
        principal = f"arn:aws:iam::{match.group(1)}:oidc-provider/{provider_name}"
        if not trust.allows(
            policy, principal=principal, action="sts:AssumeRoleWithWebIdentity", context=context
        ):
            return denied
        if duration > int(role.get("MaxSessionDuration", 3600)):
            return error_response(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            )
        return None

    def _caller(self, key_id: str) -> Caller:
        """The identity behind an access key, from moto's backends (moto runs in this process).
        A key moto does not know (the tests' own `testing`) is the default account's root."""
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends

        for account, partitions in list(iam_backends.items()):
            backend = partitions["aws"]
            key = backend.access_keys.get(key_id)
            if key is None:
                continue
            if key.user_name:
                user = backend.get_user(key.user_name)
                return Caller(str(user.arn), account, str(user.arn))
            for session in sts_backends[account]["aws"].assumed_roles:
                if session.access_key_id == key_id:
                    return Caller(str(session.arn), account, str(session.role_arn), role_session=True)
        root = f"arn:aws:iam::{ACCOUNT}:root"
        return Caller(root, ACCOUNT, root)

    def _access_key_info(self, key_id: str) -> Response:
        """sts:GetAccessKeyInfo as STS answers it: the account of any well-formed key id, an
        existing key or not (the account is encoded in the id). moto answers its own keys'
        accounts, and the caller's for any other id; here a key moto knows (a user's, or a role
        session's) is of its account, and any other id of the account its id encodes."""
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends

        account = ""
        for owner, partitions in list(iam_backends.items()):
            if key_id in partitions["aws"].access_keys or any(
                session.access_key_id == key_id for session in sts_backends[owner]["aws"].assumed_roles
            ):
                account = owner
                break
        if not account:
            try:
                account = encoded_account(key_id)
            except ValueError:
                return error_response("InvalidParameterValue", f"Invalid access key id {key_id}", 400)
        body = (
            '<GetAccessKeyInfoResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<GetAccessKeyInfoResult><Account>{account}</Account></GetAccessKeyInfoResult>"
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></GetAccessKeyInfoResponse>"
        )
        return Response(200, body.encode(), {"Content-Type": "text/xml"})

    def _assume_role(self, call: Call, key_id: str) -> Response | None:
        """sts:AssumeRole as STS decides it: moto assumes any role ARN, even one that does not exist."""
        from moto.iam.exceptions import NotFoundException
        from moto.iam.models import iam_backends

        role_arn = str(call.params.get("RoleArn", ""))
        caller = self._caller(key_id)
        denied = error_response(
            "AccessDenied",
            f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
        )
        match = re.fullmatch(r"arn:aws:iam::(\d{12}):role/(?:[^/]+/)*[^/]+", role_arn)
        if not match:
            return denied
        try:
            role = iam_backends[match.group(1)]["aws"].get_role_by_arn(role_arn)
        except NotFoundException:
            return denied
        policy = role.assume_role_policy_document
        policy = json.loads(policy) if isinstance(policy, str) else policy
        context = {"aws:PrincipalArn": caller.principal_arn, "aws:PrincipalAccount": caller.account}
        context.update(_principal_tags(caller))
        if call.params.get("ExternalId") is not None:
            context["sts:ExternalId"] = str(call.params["ExternalId"])
        if not trust.allows(
            policy, principal=caller.forms, action="sts:AssumeRole", context=context, kind="AWS"
        ):
            return denied
        duration = int(call.params.get("DurationSeconds", 3600))
        if caller.role_session and duration > 3600:
            return error_response(
                "ValidationError",
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
            )
        if duration > int(role.max_session_duration or 3600):
            return error_response(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            )
        return None

    # -- several accounts, the credential report, SES (for ACTION=audit) -------------------
    def account_client(self, service: str, account: str, region: str = "eu-west-1") -> Any:
        """A client through the front that acts in ``account`` (moto's x-moto-account-id), for
        tests' set-up: users, groups, roles and keys of a member account."""
        client = self.client(service, region=region)

        def header(request: Any, **_: Any) -> None:
            request.headers["x-moto-account-id"] = account

        client.meta.events.register("before-sign", header)
        return client

    @staticmethod
    def _account(request: Request, key_id: str) -> str:
        """The account a request acts in, by moto's rule."""
        from moto.iam.models import get_account_id_from

        return request.headers.get("x-moto-account-id") or str(get_account_id_from(key_id))

    def expire_credential_reports(self, account: str | None = None) -> None:
        """What waiting four hours does: IAM's next GenerateCredentialReport starts a new one."""
        with self._lock:
            for known in list(self.credential_reports):
                if account is None or known == account:
                    del self.credential_reports[known]

    def _credential_report(self, operation: str, account: str) -> Response:
        from moto.iam.models import iam_backends

        now = time.time()
        with self._lock:
            kept = self.credential_reports.get(account)
            if kept is not None and now - kept[0] >= 4 * 3600:
                kept = None
            if operation == "GenerateCredentialReport":
                if kept is None:
                    backend = iam_backends[account]["aws"]
                    backend.generate_report()
                    self.credential_reports[account] = (
                        now,
                        now + self.report_delay,
                        backend.get_credential_report(),
                    )
                    state = "STARTED"
                else:
                    state = "COMPLETE" if now >= kept[1] else "INPROGRESS"
                return _iam_answer(operation, f"<State>{state}</State>")
        if kept is None:
            return error_response("ReportNotPresent", "Credential report not present", 410)
        if now < kept[1]:
            return error_response("ReportInProgress", "Credential report is being generated", 404)
        generated = datetime.fromtimestamp(kept[0] + self.clock_offset, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        content = base64.b64encode(kept[2].encode()).decode()
        return _iam_answer(
            operation,
            f"<Content>{content}</Content><ReportFormat>text/csv</ReportFormat><GeneratedTime>{generated}</GeneratedTime>",
        )

    def _record_email(self, call: Call, account: str) -> None:
        content = call.params.get("Content", {}).get("Simple", {})
        body = content.get("Body", {})
        destination = call.params.get("Destination", {})
        with self._lock:
            self.emails.append(
                {
                    "account": account,
                    "region": call.region,
                    "from": call.params.get("FromEmailAddress"),
                    "to": list(destination.get("ToAddresses", [])),
                    "cc": list(destination.get("CcAddresses", [])),
                    "bcc": list(destination.get("BccAddresses", [])),
                    "subject": content.get("Subject", {}).get("Data", ""),
                    "text": body.get("Text", {}).get("Data", ""),
                    "html": body.get("Html", {}).get("Data", ""),
                }
            )

    def emails_to(self, address: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.emails if address in e["to"] + e["cc"] + e["bcc"]]

    # -- AWS's clock (`clock_offset`: the runner's clock set apart from AWS's) ---------------
    def aws_now(self) -> float:
        """AWS's clock: this machine's, ``clock_offset`` seconds ahead (negative: behind). A test
        that sets it to -90 runs the pipe on a runner 90 s fast."""
        return time.time() + self.clock_offset

    def _signed_too_far(self, request: Request, key_id: str, call: Call | None) -> Response | None:
        """SigV4: a request signed more than 5 minutes from AWS's clock is refused."""
        stamp = request.headers.get("x-amz-date", "")
        if not key_id or not stamp:
            return None
        try:
            signed = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            return None
        now = self.aws_now()
        if abs(now - signed) <= SIGV4_SKEW:
            return None

        def text(when: float) -> str:
            return datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%SZ")

        message = (
            f"Signature expired: {stamp} is now earlier than {text(now - SIGV4_SKEW)} ({text(now)} - 5 min.)"
            if signed < now
            else f"Signature not yet current: {stamp} is still later than {text(now + SIGV4_SKEW)} "
            f"({text(now)} + 5 min.)"
        )
        if call is not None and call.protocol != "query":
            return json_error_response(
                "InvalidSignatureException", message, rest=call.protocol == "rest-json"
            )
        return error_response("SignatureDoesNotMatch", message, 403)

    def _on_aws_clock(self, action: str, key_id: str, response: Response) -> None:
        """moto dates by this machine's clock: set what it answered, and keeps, to AWS's."""
        offset = self.clock_offset
        if not offset:
            return
        if key_id.startswith("AKIA"):  # moto stamped the key's use just now
            with contextlib.suppress(KeyError):
                used = self._moto_key(key_id).last_used
                if used is not None and not getattr(used, "shifted", False):
                    used._timestamp = used.timestamp + timedelta(seconds=offset)
                    used.shifted = True  # by AWS's clock already
        if action == "CreateAccessKey":
            made = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", response.body)
            if made:
                key = self._moto_key(made.group(1).decode())
                key.create_date += timedelta(seconds=offset)
                stamp = key.create_date.strftime("%Y-%m-%dT%H:%M:%SZ")
                response.body = re.sub(
                    rb"<CreateDate>[^<]*</CreateDate>",
                    f"<CreateDate>{stamp}</CreateDate>".encode(),
                    response.body,
                )
        if action in ("AssumeRole", "AssumeRoleWithWebIdentity") and self.session_lifetime is None:
            found = re.search(rb"<Expiration>([^<]+)</Expiration>", response.body)
            if found:
                ends = datetime.fromisoformat(found.group(1).decode().replace("Z", "+00:00"))
                stamp = (ends + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")
                response.body = response.body.replace(
                    found.group(0), f"<Expiration>{stamp}</Expiration>".encode()
                )


def encoded_account(key_id: str) -> str:
    """The account an access key id encodes: the 4-letter prefix, then base32 whose first 6
    bytes hold the account id in bits 7 to 46 (ValueError when the id is not base32)."""
    try:
        raw = base64.b32decode(key_id[4:])
    except ValueError as exc:  # binascii.Error is one
        raise ValueError(key_id) from exc
    if len(raw) < 6:
        raise ValueError(key_id)
    return f"{(int.from_bytes(raw[:6], 'big') & 0x7FFFFFFFFF80) >> 7:012d}"


def _iam_answer(operation: str, result: str) -> Response:
    body = (
        f'<{operation}Response xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        f"<{operation}Result>{result}</{operation}Result>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></{operation}Response>"
    )
    return Response(200, body.encode(), {"Content-Type": "text/xml"})
