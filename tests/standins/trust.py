"""The stand-in STS's own evaluation of a role trust policy (independent of pipe/ on
purpose: it is the oracle the pipe's messages are tested against)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

_OPERATORS = {
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "Null",
    "IpAddress",
    "NotIpAddress",
}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """StringLike by simulating the pattern as an automaton: the set of pattern positions
    reachable after each character of the value (linear in the value, whatever the pattern)."""
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()

    def closure(states: set[int]) -> set[int]:
        out = set(states)
        for start in states:
            state = start
            while state < len(pattern) and pattern[state] == "*":
                state += 1
                out.add(state)
        return out

    states = closure({0})
    for char in value:
        following = set()
        for state in states:
            if state < len(pattern):
                if pattern[state] == "*":
                    following.add(state)
                elif pattern[state] == "?" or pattern[state] == char:
                    following.add(state + 1)
        states = closure(following)
        if not states:
            return False
    return len(pattern) in states


def _in_network(network: str, value: str) -> bool:
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


def _matches(base: str, wanted: list[str], value: str) -> bool:
    if base in ("IpAddress", "NotIpAddress"):
        return any(_in_network(w, value) for w in wanted)
    if base in ("StringEquals", "StringNotEquals"):
        return value in wanted
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return value.lower() in (w.lower() for w in wanted)
    return any(_glob(w, value) for w in wanted)


def _condition(op: str, block: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    qualifier = ""
    if ":" in op:
        qualifier, op = op.split(":", 1)
    if_exists = op.endswith("IfExists")
    base = op.removesuffix("IfExists")
    if base not in _OPERATORS:
        return False  # an operator the stand-in does not know never grants
    negated = "Not" in base
    lowered = {k.lower(): v for k, v in context.items()}
    for key, wanted in block.items():
        present = key.lower() in lowered
        if base == "Null":
            want_null = str(_list(wanted)[0]).lower() == "true"
            if want_null == present:
                return False
            continue
        if not present:
            if if_exists or negated or qualifier == "ForAllValues":
                continue
            return False
        values = _list(lowered[key.lower()])
        wanted_list = [str(w) for w in _list(wanted)]
        hits = [_matches(base, wanted_list, str(v)) for v in values]
        if qualifier == "ForAllValues":
            ok = all(not h for h in hits) if negated else all(hits)
        elif negated:
            ok = not any(hits)
        else:
            ok = any(hits)
        if not ok:
            return False
    return True


def _principal_ok(statement: Mapping[str, Any], principals: Sequence[str], kind: str) -> bool:
    value = statement.get("Principal")
    if value == "*":
        return True
    if not isinstance(value, Mapping):
        return False
    return any(p == "*" or p in principals for p in _list(value.get(kind, [])))


def _action_ok(statement: Mapping[str, Any], action: str) -> bool:
    return any(_glob(str(a), action, ignore_case=True) for a in _list(statement.get("Action", [])))


def allows(
    policy: Mapping[str, Any],
    *,
    principal: str | Sequence[str],
    action: str,
    context: Mapping[str, str],
    kind: str = "Federated",
) -> bool:
    """Does ``policy`` let ``principal`` (a ``kind`` principal: "Federated" for an identity
    provider, "AWS" for an IAM identity, given as every form a statement may name it by) do
    ``action`` in ``context``?"""
    principals = [principal] if isinstance(principal, str) else list(principal)
    allowed = False
    for statement in _list(policy.get("Statement", [])):
        if not _principal_ok(statement, principals, kind) or not _action_ok(statement, action):
            continue
        conditions = statement.get("Condition", {}) or {}
        if not all(_condition(op, block, context) for op, block in conditions.items()):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow":
            allowed = True
    return allowed
