"""A static evaluator of identity-policy statements, for the least-privilege tests: does a
statement allow this action on this resource in this request context?

IAM's rules as far as the templates use them: Action and NotAction match case-insensitively
with * and ?; Resource and NotResource case-sensitively, after policy variables such as
${aws:username} are put in from the context; an explicit Deny wins; the condition operators
StringEquals / StringLike (and their Not, IgnoreCase and IfExists forms), ArnEquals / ArnLike,
with policy variables in their values (``${aws:PrincipalOrgID}``), Null and Bool, with
ForAllValues: and ForAnyValue:. A key absent from the context fails every
operator but the negated ones, ...IfExists and ForAllValues:. An operator not listed here
raises, so a template that starts using one makes the test fail rather than pass unevaluated.

moto could evaluate policies too, in its authorisation mode, but it matches most calls against
the resource "*" and does not evaluate conditions (docs/development.md, Stand-ins)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

Context = Mapping[str, str | Sequence[str]]
_VARIABLE = re.compile(r"\$\{([^}]+)\}")
_STRING = {
    "StringEquals": (False, False, False),  # (glob, negated, ignore case)
    "StringNotEquals": (False, True, False),
    "StringEqualsIgnoreCase": (False, False, True),
    "StringNotEqualsIgnoreCase": (False, True, True),
    "StringLike": (True, False, False),
    "StringNotLike": (True, True, False),
    "ArnEquals": (True, False, False),
    "ArnLike": (True, False, False),
    "ArnNotEquals": (True, True, False),
    "ArnNotLike": (True, True, False),
}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def glob(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM's wildcard match: * any run of characters, ? exactly one, the rest literal."""
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _expand(pattern: str, context: Context) -> str | None:
    """A Resource with its policy variables put in; None when one is not in the context (the
    statement then matches nothing, as in IAM)."""
    missing = False

    def put(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1)
        if name in ("*", "?", "$"):
            return name
        value = context.get(name)
        if not isinstance(value, str):
            missing = True
            return ""
        return value

    expanded = _VARIABLE.sub(put, pattern)
    return None if missing else expanded


def _operator(operator: str, key: str, wanted: Any, context: Context) -> bool:
    qualifier, _, name = operator.rpartition(":")
    if_exists = name.endswith("IfExists")
    base = name.removesuffix("IfExists")
    present = key in context
    values = [str(v) for v in _list(context.get(key, []))]
    if base == "Null":
        wanted_list = [str(w) for w in _list(wanted)]
        return (wanted_list[0].lower() == "true") == (not present)
    if base == "Bool":
        return present and any(v.lower() == str(_list(wanted)[0]).lower() for v in values)
    if base not in _STRING:
        raise ValueError(f"the condition operator {operator} is not known to this evaluator")
    is_glob, negated, ignore_case = _STRING[base]
    # Policy variables in the values (``${aws:PrincipalOrgID}``); one the context lacks matches
    # nothing.
    wanted_list = [w for w in (_expand(str(w), context) for w in _list(wanted)) if w is not None]
    if not present:
        return if_exists or negated or qualifier == "ForAllValues"

    def hit(value: str) -> bool:
        if is_glob:
            return any(glob(w, value, ignore_case) for w in wanted_list)
        if ignore_case:
            return value.lower() in (w.lower() for w in wanted_list)
        return value in wanted_list

    hits = [hit(v) for v in values]
    if qualifier == "ForAllValues":
        return all(not h for h in hits) if negated else all(hits)
    return not any(hits) if negated else any(hits)


def matches(statement: Mapping[str, Any], action: str, resource: str, context: Context) -> bool:
    """Does ``statement`` apply to ``action`` on ``resource`` in ``context`` (whatever its Effect)?"""
    if "NotAction" in statement:
        if any(glob(a, action, ignore_case=True) for a in _list(statement["NotAction"])):
            return False
    elif not any(glob(a, action, ignore_case=True) for a in _list(statement.get("Action", []))):
        return False
    patterns = _list(statement.get("NotResource", statement.get("Resource", [])))
    expanded = [p for p in (_expand(str(p), context) for p in patterns) if p is not None]
    hit = any(glob(p, resource) for p in expanded)
    if hit == ("NotResource" in statement):
        return False
    conditions = statement.get("Condition") or {}
    return all(
        _operator(operator, key, wanted, context)
        for operator, block in conditions.items()
        for key, wanted in block.items()
    )


def allowing(
    statements: Sequence[Mapping[str, Any]], action: str, resource: str, context: Context
) -> list[Mapping[str, Any]]:
    """The Allow statements that let ``action`` on ``resource`` through; [] when none does or a
    Deny statement matches."""
    applying = [s for s in statements if matches(s, action, resource, context)]
    if any(s.get("Effect") == "Deny" for s in applying):
        return []
    return [s for s in applying if s.get("Effect") == "Allow"]
