"""AWS's input validation, from botocore's service models, for the AWS stand-in's front.

Every AWS service checks each request against its model before it does anything: the
`pattern`, `min`, `max` and `enum` of every member, at any depth (a tag value inside a list of
tags as much as a top-level name), and `required`. moto checks few of these and botocore checks
none of the patterns on the client side, so a stand-in without this accepts what AWS refuses.
This module parses a raw request (the query protocol of IAM and STS, the JSON protocol of SSM,
Secrets Manager and Organizations, the rest-json protocol of SES v2), finds its operation in
botocore's model and lists what AWS would refuse, in AWS's own words:

    1 validation error detected: Value '{"a":1}' at 'tags.1.member.value' failed to satisfy
    constraint: Member must satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*

The answer's code is the service's own: `ValidationError` for the query protocol (IAM, STS),
the model's `ValidationException` (else `BadRequestException`, as in SES v2) for the others.

- A value whose shape is `sensitive` in the model (`WebIdentityToken`, `SecretString`, an SSM
  parameter `Value`, or anything inside such a shape) is never echoed: AWS says "Value at
  'secretString' failed ..." for those, and so does this module.
- botocore's patterns are Java regular expressions. `java_regex` translates them: `\\p{L}`,
  `\\p{Z}`, `\\p{N}` (the `regex` package supports them); `\\uXXXX`; the 5- and 6-digit
  `\\u10000-\\u10FFFF` of some models, which Java would read as `\\u1000` followed by `0`, is taken
  as the supplementary planes it means; `\\w`, `\\d`, `\\s` are ASCII, as in Java (Python's match
  any Unicode letter or digit). A pattern must match the whole value (Java's `matches()`).
- Lengths count code points; a blob's length counts bytes.

Rules AWS documents but the models lack (`EXTRA_RULES`; each states its source):
- SSM `PutParameter` `Name` ("Requirements and constraints for parameter names"): only
  `a-zA-Z0-9_.-` and `/`; a name with a `/` is fully qualified (starts with `/`); not
  prefixed `ssm` (all three answered with AWS's one message for them); at most 15 hierarchy
  levels; at most 1011 characters with the `arn:aws:ssm:<region>:<account>:parameter/` before
  it (the model's 2048 includes 1037 characters SSM reserves; answered as a length violation of
  `name` with what is left for the name, a message of ours).
- SSM `PutParameter` and `DeleteParameter`: a name that starts with `aws` (case-insensitive,
  with or without the leading slash, at a segment boundary or not: `/aws-anything/x` too) is
  AWS's own: AccessDeniedException "No access to reserved parameter name: ...". moto refuses
  some of these, with other codes; the front answers first, as AWS does.
- Secrets Manager `CreateSecret` `Name` (the API reference's "Name"): only ASCII letters,
  digits and `/_+=.@-`.

Adding a service: add its botocore name to `SERVICES` (its protocol must be one of the three
above). Adding a rule the model lacks: a function in `EXTRA_RULES`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import botocore.session
import regex
from botocore.model import OperationModel, ServiceModel, Shape

SERVICES = ("iam", "sts", "ssm", "secretsmanager", "organizations", "sesv2")
ACCOUNT = "123456789012"
_MISSING = object()
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


# -- Java regular expressions ---------------------------------------------------------------------
_ASCII_ESCAPES = frozenset("wdsWDSbB")  # ASCII in Java, Unicode in Python: scoped (?a:...) here


def _escape(pattern: str, i: int) -> tuple[str, int]:
    """The escape at ``pattern[i]`` (a backslash) in Python's spelling, and where it ends."""
    if pattern[i + 1 : i + 2] == "u":
        run = re.match(r"[0-9A-Fa-f]{4,6}", pattern[i + 2 : i + 8])
        digits = run.group(0) if run else ""
        if len(digits) > 4 and 0x10000 <= int(digits, 16) <= 0x10FFFF:
            return f"\\U{int(digits, 16):08X}", i + 2 + len(digits)
        return pattern[i : i + 6], i + 6
    if pattern[i + 1 : i + 2] in ("p", "P") and pattern[i + 2 : i + 3] == "{":
        end = pattern.index("}", i)
        return pattern[i : end + 1], end + 1
    return pattern[i : i + 2], i + 2


def _translate(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            text, i = _escape(pattern, i)
            out.append(f"(?a:{text})" if text[1] in _ASCII_ESCAPES else text)
            continue
        if char != "[":
            out.append(char)
            i += 1
            continue
        parts = ["["]
        i += 1
        for opening in ("^", "]"):  # a negation, then a literal ']' first in the class
            if pattern[i : i + 1] == opening:
                parts.append("\\]" if opening == "]" else "^")
                i += 1
        ascii_escapes = unicode_properties = False
        while i < len(pattern) and pattern[i] != "]":
            if pattern[i] == "\\" and i + 1 < len(pattern):
                text, i = _escape(pattern, i)
                ascii_escapes |= text[1] in _ASCII_ESCAPES
                unicode_properties |= text[1] in ("p", "P")
                parts.append(text)
            else:
                parts.append(pattern[i])
                i += 1
        parts.append("]")
        i += 1
        if ascii_escapes and unicode_properties:
            raise ValueError(f"\\w, \\d or \\s beside \\p{{...}} in one class: {pattern}")
        out.append(f"(?a:{''.join(parts)})" if ascii_escapes else "".join(parts))
    return "".join(out)


@lru_cache(maxsize=1024)
def java_regex(pattern: str) -> regex.Pattern[str]:
    """A botocore model's (Java) pattern as a compiled Python pattern with Java's meaning."""
    return regex.compile(_translate(pattern), regex.V0)


# -- violations -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Violation:
    path: str  # AWS's: lowerCamelCase member names, list items as `.N.member` (from 1)
    value: Any  # None: the member is missing
    constraint: str
    sensitive: bool = False

    def __str__(self) -> str:
        if self.value is None:
            return f"Value null at '{self.path}' failed to satisfy constraint: {self.constraint}"
        if self.sensitive:
            return f"Value at '{self.path}' failed to satisfy constraint: {self.constraint}"
        return (
            f"Value '{_render(self.value)}' at '{self.path}' failed to satisfy constraint: {self.constraint}"
        )


def _render(value: Any) -> str:
    """The value as AWS's (Java) message shows it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, bytes):
        return f"java.nio.HeapByteBuffer[pos=0 lim={len(value)} cap={len(value)}]"
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_render(v)}" for k, v in value.items()) + "}"
    return str(value)


def message(violations: list[Violation]) -> str:
    count = len(violations)
    return f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(
        str(v) for v in violations
    )


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def validate(shape: Shape, value: Any, path: str = "", sensitive: bool = False) -> list[Violation]:
    """Every constraint of ``shape`` that ``value`` (parsed, keyed by member name) breaks."""
    sensitive = sensitive or bool(shape.metadata.get("sensitive"))
    meta = shape.metadata
    found: list[Violation] = []

    def broken(constraint: str) -> None:
        found.append(Violation(path, value, constraint, sensitive))

    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, Mapping):
            return found
        for name in getattr(shape, "required_members", []):
            if value.get(name) is None:
                found.append(Violation(_join(path, _camel(name)), None, "Member must not be null"))
        for name, member in shape.members.items():
            if value.get(name) is not None:
                found += validate(member, value[name], _join(path, _camel(name)), sensitive)
        return found
    if kind in ("list", "map") and isinstance(value, list | dict):
        if "min" in meta and len(value) < meta["min"]:
            broken(f"Member must have length greater than or equal to {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            broken(f"Member must have length less than or equal to {meta['max']}")
        if isinstance(value, list):
            member = shape.member
            for index, item in enumerate(value, start=1):
                found += validate(member, item, f"{path}.{index}.member", sensitive)
        else:
            for key, item in value.items():
                found += validate(shape.key, key, f"{path}.{key}.key", sensitive)
                found += validate(shape.value, item, f"{path}.{key}.value", sensitive)
        return found
    if kind == "string" and isinstance(value, str):
        if "min" in meta and len(value) < meta["min"]:
            broken(f"Member must have length greater than or equal to {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            broken(f"Member must have length less than or equal to {meta['max']}")
        if "pattern" in meta and not java_regex(meta["pattern"]).fullmatch(value):
            broken(f"Member must satisfy regular expression pattern: {meta['pattern']}")
        enum = list(getattr(shape, "enum", []) or [])
        if enum and value not in enum:
            broken(f"Member must satisfy enum value set: [{', '.join(enum)}]")
        return found
    if kind == "blob" and isinstance(value, bytes):
        if "min" in meta and len(value) < meta["min"]:
            broken(f"Member must have length greater than or equal to {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            broken(f"Member must have length less than or equal to {meta['max']}")
        return found
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if kind in ("integer", "long", "float", "double") and numeric:
        if "min" in meta and value < meta["min"]:
            broken(f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            broken(f"Member must have value less than or equal to {meta['max']}")
    return found


# -- parsing raw requests -------------------------------------------------------------------------
def _scalar(shape: Shape, text: str) -> Any:
    kind = shape.type_name
    if kind in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            return text
    if kind in ("float", "double"):
        try:
            return float(text)
        except ValueError:
            return text
    if kind == "boolean":
        return text.lower() == "true"
    if kind == "blob":
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return text.encode()
    return text


def from_query(shape: Shape, flat: Mapping[str, str], prefix: str = "") -> Any:
    """A query-protocol request's flat parameters (`Tags.member.1.Key=...`) as nested values."""
    kind = shape.type_name
    if kind == "structure":
        if prefix and not any(k.startswith(prefix + ".") for k in flat):
            return _MISSING
        out: dict[str, Any] = {}
        for name, member in shape.members.items():
            value = from_query(member, flat, _join(prefix, member.serialization.get("name", name)))
            if value is not _MISSING:
                out[name] = value
        return out
    if kind == "list":
        member = shape.member
        base = (
            prefix
            if shape.serialization.get("flattened")
            else f"{prefix}.{member.serialization.get('name', 'member')}"
        )
        items: list[Any] = []
        while True:
            key = f"{base}.{len(items) + 1}"
            if key not in flat and not any(k.startswith(key + ".") for k in flat):
                break
            items.append(from_query(member, flat, key))
        if not items and prefix not in flat:
            return _MISSING
        return items
    if kind == "map":
        base = prefix if shape.serialization.get("flattened") else f"{prefix}.entry"
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        entries: dict[Any, Any] = {}
        index = 1
        while f"{base}.{index}.{key_name}" in flat:
            entries[flat[f"{base}.{index}.{key_name}"]] = from_query(
                shape.value,
                flat,
                f"{base}.{index}.{value_name}",
            )
            index += 1
        return entries if entries or prefix in flat else _MISSING
    if prefix not in flat:
        return _MISSING
    return _scalar(shape, flat[prefix])


def from_json(shape: Shape, value: Any) -> Any:
    """A JSON body's value keyed by member names (the wire may use other names)."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for name, member in shape.members.items():
            wire = member.serialization.get("name", name)
            if member.serialization.get("location"):
                continue
            if wire in value:
                out[name] = from_json(member, value[wire])
        return out
    if kind == "list" and isinstance(value, list):
        return [from_json(shape.member, v) for v in value]
    if kind == "map" and isinstance(value, Mapping):
        return {k: from_json(shape.value, v) for k, v in value.items()}
    if kind == "blob" and isinstance(value, str):
        return _scalar(shape, value)
    return value


@dataclass(frozen=True)
class Call:
    service: str  # botocore's name: iam, sts, ssm, secretsmanager, organizations, sesv2
    operation: OperationModel
    params: dict[str, Any]
    region: str = "us-east-1"
    account: str = ACCOUNT

    @property
    def protocol(self) -> str:
        return str(self.operation.service_model.protocol)


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str


@dataclass
class _Route:
    method: str
    regex: re.Pattern[str]
    labels: dict[str, str]  # regex group -> member name
    query: dict[str, str]  # literal query parameters the URI template requires
    operation: OperationModel
    literal: int  # how specific: literal characters in the template
    service: str


def _route(service: str, operation: OperationModel) -> _Route:
    template = operation.http["requestUri"]
    path, _, query = template.partition("?")
    labels: dict[str, str] = {}
    parts: list[str] = []
    literal = 0
    for piece in re.split(r"(\{[^}]+\})", path):
        if piece.startswith("{"):
            name = piece[1:-1]
            greedy = name.endswith("+")
            name = name.rstrip("+")
            group = f"g{len(labels)}"
            members = operation.input_shape.members if operation.input_shape else {}
            labels[group] = next(
                (m for m, s in members.items() if s.serialization.get("name", m) == name), name
            )
            parts.append(f"(?P<{group}>{'.+' if greedy else '[^/]+'})")
        else:
            literal += len(piece)
            parts.append(re.escape(piece))
    required = {k: v[0] if v else "" for k, v in parse_qs(query, keep_blank_values=True).items()}
    return _Route(
        operation.http["method"],
        re.compile("^" + "".join(parts) + "$"),
        labels,
        required,
        operation,
        literal,
        service,
    )


@dataclass
class Catalog:
    """botocore's models of ``services``, indexed to find a raw request's operation."""

    services: tuple[str, ...] = SERVICES
    models: dict[str, ServiceModel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        session = botocore.session.get_session()
        self._query: dict[tuple[str, str], str] = {}  # (signing name, action) -> service
        self._query_actions: dict[str, list[str]] = {}  # action -> services (unsigned requests)
        self._targets: dict[str, str] = {}  # x-amz-target prefix -> service
        self._routes: dict[str, list[_Route]] = {}  # signing name -> routes, most specific first
        for name in self.services:
            model = session.get_service_model(name)
            self.models[name] = model
            if model.protocol == "query":
                for operation in model.operation_names:
                    self._query[(model.signing_name, operation)] = name
                    self._query_actions.setdefault(operation, []).append(name)
            elif model.protocol == "json":
                self._targets[str(model.metadata["targetPrefix"])] = name
            elif model.protocol == "rest-json":
                routes = [_route(name, model.operation_model(op)) for op in model.operation_names]
                self._routes.setdefault(model.signing_name, []).extend(routes)
                self._routes[model.signing_name].sort(key=lambda r: -r.literal)
            else:
                raise ValueError(f"{name}: the {model.protocol} protocol is not parsed here")

    def parse(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Call | None:
        """The request's operation and parameters, or None when no model here knows it."""
        scope = _SCOPE.search(headers.get("authorization", ""))
        region, signing = (scope.group(1), scope.group(2)) if scope else ("us-east-1", "")
        target = headers.get("x-amz-target", "")
        if target:
            prefix, _, action = target.partition(".")
            service = self._targets.get(prefix)
            if service is None or action not in self.models[service].operation_names:
                return None
            operation = self.models[service].operation_model(action)
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return None
            params = from_json(operation.input_shape, data) if operation.input_shape else {}
            return Call(service, operation, params, region)
        url = urlparse(path)
        if "x-www-form-urlencoded" in headers.get("content-type", ""):
            form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
            action = form.get("Action", "")
            service = self._query.get((signing, action)) if signing else None
            if service is None:
                candidates = self._query_actions.get(action, [])
                service = candidates[0] if len(candidates) == 1 else None
            if service is None:
                return None
            operation = self.models[service].operation_model(action)
            shape = operation.input_shape
            params = from_query(shape, form) if shape else {}
            return Call(service, operation, params if isinstance(params, dict) else {}, region)
        for route in self._routes.get(signing, []):
            match = route.regex.match(url.path)
            query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            if method != route.method or not match or any(query.get(k) != v for k, v in route.query.items()):
                continue
            return Call(
                route.service, route.operation, self._rest_params(route, match, query, headers, body), region
            )
        return None

    def _rest_params(
        self,
        route: _Route,
        match: re.Match[str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> dict[str, Any]:
        shape = route.operation.input_shape
        if shape is None:
            return {}
        params: dict[str, Any] = {}
        payload = shape.serialization.get("payload")
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            data = {}
        if payload:
            params[payload] = from_json(shape.members[payload], data)
        else:
            params.update(from_json(shape, data))
        lowered = {k.lower(): v for k, v in headers.items()}
        for name, member in shape.members.items():
            where, wire = member.serialization.get("location"), member.serialization.get("name", name)
            if where == "querystring" and wire in query:
                params[name] = _scalar(member, query[wire])
            elif where == "header" and wire.lower() in lowered:
                params[name] = _scalar(member, lowered[wire.lower()])
        for group, name in route.labels.items():
            params[name] = _scalar(shape.members[name], unquote(match.group(group)))
        return params

    def check(self, call: Call) -> Refusal | None:
        """What AWS would answer instead of doing the call, or None when it would do it."""
        shape = call.operation.input_shape
        violations = validate(shape, call.params) if shape is not None else []
        if violations:
            return Refusal(400, self.validation_code(call.service), message(violations))
        rule = EXTRA_RULES.get((call.service, call.operation.name))
        return rule(call) if rule else None

    def validation_code(self, service: str) -> str:
        model = self.models[service]
        if model.protocol == "query":
            return "ValidationError"
        names = {shape.name for shape in model.error_shapes}
        return (
            "ValidationException"
            if "ValidationException" in names or "BadRequestException" not in names
            else "BadRequestException"
        )


# -- rules AWS documents that the models lack -----------------------------------------------------
_SSM_NAME = re.compile(r"[a-zA-Z0-9_.\-/]+")
# AWS's answer to a bad character, an `ssm` prefix and a hierarchy without its leading slash alike.
_SSM_NAME_RULES = (
    'Parameter name: can\'t be prefixed with "ssm" (case-insensitive). If formed as a path, it can '
    "consist of sub-paths divided by slash symbol; each sub-path can be formed as a mix of letters, numbers "
    "and the following 3 symbols .-_"
)


def _ssm_reserved(call: Call) -> Refusal | None:
    """`aws...` names are AWS's own (its public parameters live under /aws/): AWS refuses any name
    that starts so, with or without the leading slash, at any segment boundary or none
    (`aws-cdk-playground` is refused as much as `/aws/test`)."""
    bare = str(call.params.get("Name", "")).removeprefix("/")
    if bare.lower().startswith("aws"):
        return Refusal(400, "AccessDeniedException", f"No access to reserved parameter name: {bare}.")
    return None


def _ssm_parameter_name(call: Call) -> Refusal | None:
    reserved = _ssm_reserved(call)
    if reserved:
        return reserved
    name = str(call.params.get("Name", ""))
    if (
        not _SSM_NAME.fullmatch(name)
        or name.removeprefix("/").lower().startswith("ssm")
        or ("/" in name and not name.startswith("/"))
    ):
        return Refusal(400, "ValidationException", _SSM_NAME_RULES)
    if name.count("/") > 15:
        return Refusal(
            400,
            "HierarchyLevelLimitExceededException",
            "A hierarchy can have a maximum of 15 levels. For more information, see Requirements and "
            "constraints for parameter names in the AWS Systems Manager User Guide.",
        )
    arn = f"arn:aws:ssm:{call.region}:{call.account}:parameter/{name.removeprefix('/')}"
    if len(arn) > 1011:
        # The model's max of 2048 includes 1037 characters SSM reserves for itself.
        return Refusal(
            400,
            "ValidationException",
            f"1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: "
            f"Member must have length less than or equal to {1011 - (len(arn) - len(name.removeprefix('/')))}",
        )
    return None


_SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@\-]+")


def _secret_name(call: Call) -> Refusal | None:
    if not _SECRET_NAME.fullmatch(str(call.params.get("Name", ""))):
        return Refusal(
            400,
            "ValidationException",
            "Invalid name. Must be a valid name containing alphanumeric characters, or any of the "
            "following: -/_+=.@!",
        )
    return None


EXTRA_RULES: dict[tuple[str, str], Callable[[Call], Refusal | None]] = {
    ("ssm", "PutParameter"): _ssm_parameter_name,
    ("ssm", "DeleteParameter"): _ssm_reserved,
    ("secretsmanager", "CreateSecret"): _secret_name,
}
