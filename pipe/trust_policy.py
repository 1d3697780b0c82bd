"""Evaluating a role's trust policy against a Bitbucket OIDC token, statement by statement:
principal, action and every condition, with the reason a condition fails and the line that
would make it pass. Pure: no AWS, no I/O.

Semantics follow IAM's: condition keys are case-insensitive, values case-sensitive (but for
the IgnoreCase operators); a key absent from the request fails every operator but the
negated ones, `...IfExists` and `ForAllValues:`; `Null` tests presence; an explicit Deny wins.
"""

# Over 300 lines: IAM's condition operators and globs, evaluated statement by statement, with the
# exact fix for each mismatch; one evaluator.

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipe.oidc import TokenClaims, sub_pattern

ACTION = "sts:AssumeRoleWithWebIdentity"
OPERATORS = {
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "Null",
}


@dataclass(frozen=True)
class Condition:
    operator: str  # as written, e.g. ForAnyValue:StringLike
    key: str
    wanted: tuple[str, ...]
    actual: str | None
    ok: bool
    why: str = ""
    fix: str = ""  # the corrected line, when one can be given


@dataclass(frozen=True)
class Statement:
    index: int
    sid: str
    effect: str
    principal_ok: bool
    action_ok: bool
    conditions: tuple[Condition, ...]
    principal_why: str = ""

    @property
    def matches(self) -> bool:
        return self.principal_ok and self.action_ok and all(c.ok for c in self.conditions)

    @property
    def name(self) -> str:
        return f"statement {self.index + 1}" + (f" ({self.sid})" if self.sid else "")


@dataclass(frozen=True)
class Finding:
    severity: str  # error | warning | info
    code: str
    message: str
    fix: str = ""


@dataclass(frozen=True)
class Evaluation:
    allowed: bool
    statements: tuple[Statement, ...]
    findings: tuple[Finding, ...] = field(default=())

    @property
    def denied_by(self) -> Statement | None:
        return next((s for s in self.statements if s.effect == "Deny" and s.matches), None)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM's StringLike: ``*`` any run of characters, ``?`` exactly one, the rest literal.

    The classic wildcard match: walk both strings, remember the last ``*``, and on a mismatch
    let that star take one more character. At most len(pattern) x len(value) steps, whatever
    the pattern (a regex of ``.*`` runs backtracks exponentially: ``*a*a*a...*X``)."""
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    p = v = 0
    star, taken = -1, 0
    while v < len(value):
        if p < len(pattern) and pattern[p] == "*":
            star, taken = p, v
            p += 1
        elif p < len(pattern) and pattern[p] in ("?", value[v]):
            p += 1
            v += 1
        elif star >= 0:
            taken += 1
            p, v = star + 1, taken
        else:
            return False
    return pattern[p:].strip("*") == ""


def _hit(base: str, wanted: Sequence[str], value: str) -> bool:
    if base in ("StringEquals", "StringNotEquals"):
        return value in wanted
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return value.lower() in (w.lower() for w in wanted)
    return any(_glob(w, value) for w in wanted)


def context_for(claims: TokenClaims) -> dict[str, str]:
    """The condition keys STS sets for a Bitbucket token."""
    return {f"{claims.provider}:aud": claims.aud, f"{claims.provider}:sub": claims.sub}


def _condition(operator: str, key: str, raw: Any, claims: TokenClaims) -> Condition:
    context = {k.lower(): v for k, v in context_for(claims).items()}
    qualifier, _, op = operator.rpartition(":")
    if_exists = op.endswith("IfExists")
    base = op.removesuffix("IfExists")
    wanted = tuple(str(w) for w in _list(raw))
    actual = context.get(key.lower())
    if base not in OPERATORS:
        return Condition(
            operator, key, wanted, actual, False, f"{operator} is not an operator this check knows"
        )
    if base == "Null":
        want_null = wanted[0].lower() == "true" if wanted else False
        ok = want_null == (actual is None)
        why = "" if ok else f"Null {wanted[0]} but the key is {'absent' if actual is None else 'present'}"
        return Condition(operator, key, wanted, actual, ok, why)
    negated = "Not" in base
    if actual is None:
        ok = if_exists or negated or qualifier == "ForAllValues"
        why = "" if ok else _absent_key(key, claims)
        return Condition(operator, key, wanted, None, ok, why, "" if ok else _fixed_line(key, claims))
    hits = [_hit(base, wanted, actual)]
    if qualifier == "ForAllValues":
        ok = all(not h for h in hits) if negated else all(hits)
    else:
        ok = not any(hits) if negated else any(hits)
    if ok:
        return Condition(operator, key, wanted, actual, True)
    return Condition(
        operator,
        key,
        wanted,
        actual,
        False,
        _mismatch(base, key, wanted, actual, claims),
        _fixed_line(key, claims),
    )


def _absent_key(key: str, claims: TokenClaims) -> str:
    prefix, _, name = key.rpartition(":")
    if prefix.lower() != claims.provider.lower():
        return f"the key's prefix {prefix!r} is not this token's issuer {claims.provider!r}, so STS never sets it"
    return f"STS sets no {name!r} key for a Bitbucket token (only aud and sub)"


def _mismatch(base: str, key: str, wanted: Sequence[str], actual: str, claims: TokenClaims) -> str:
    name = key.rpartition(":")[2].lower()
    shown = ", ".join(repr(w) for w in wanted)
    if "Not" in base:
        return f"{base} excludes {actual!r} ({shown})"
    if base in ("StringEquals", "StringEqualsIgnoreCase") and any(("*" in w or "?" in w) for w in wanted):
        return f"{base} takes * and ? literally; {shown} never equals {actual!r}: use StringLike"
    if name == "aud":
        if any(
            w.strip() == f"ari:cloud:bitbucket::workspace/{{{claims.aud.rsplit('/', 1)[-1]}}}" for w in wanted
        ):
            return (
                f"the audience has braces around the workspace UUID ({shown}); the token's aud is {actual!r}"
            )
        return f"the token's aud is {actual!r}, not {shown}"
    if name == "sub":
        repo = claims.repository_uuid or actual.split(":", 1)[0]
        if any(w == repo for w in wanted):
            return f"{shown} is only the repository; the sub also has the step part ({actual!r}): use StringLike with ':*'"
        if any(w.lower() == actual.lower() or _glob(w, actual, ignore_case=True) for w in wanted):
            return f"{shown} differs from {actual!r} only in letter case; values are case-sensitive"
        if not any(w.startswith(repo) for w in wanted):
            return f"{shown} names another repository; this token's sub is {actual!r}"
        return f"{shown} does not match this token's sub {actual!r}"
    return f"{shown} does not match {actual!r}"


def _fixed_line(key: str, claims: TokenClaims) -> str:
    name = key.rpartition(":")[2].lower()
    if name == "aud":
        return f'"StringEquals": {{"{claims.provider}:aud": "{claims.aud}"}}'
    if name == "sub":
        return f'"StringLike": {{"{claims.provider}:sub": "{sub_pattern(claims)}"}}'
    return ""


def _principal(statement: Mapping[str, Any], provider_arn: str) -> tuple[bool, str]:
    principal = statement.get("Principal")
    if principal == "*":
        return True, ""
    if not isinstance(principal, Mapping):
        return False, "no Principal"
    federated = [str(p) for p in _list(principal.get("Federated", []))]
    if "*" in federated or provider_arn in federated:
        return True, ""
    if not federated:
        kinds = ", ".join(principal) or "none"
        return False, f"the principal is not Federated ({kinds}); it must be {provider_arn}"
    return False, f"Federated is {', '.join(federated)}, not this token's provider {provider_arn}"


def _principals(principal: Any) -> str:
    if not isinstance(principal, Mapping):
        return ""
    return ", ".join(str(p) for value in principal.values() for p in _list(value))


def _action(statement: Mapping[str, Any]) -> bool:
    return any(_glob(str(a), ACTION, ignore_case=True) for a in _list(statement.get("Action", [])))


def evaluate(policy: Mapping[str, Any], *, claims: TokenClaims, provider_arn: str) -> Evaluation:
    statements = []
    for index, raw in enumerate(_list(policy.get("Statement", []))):
        if not isinstance(raw, Mapping):
            continue
        principal_ok, principal_why = _principal(raw, provider_arn)
        conditions = tuple(
            _condition(operator, key, wanted, claims)
            for operator, block in (raw.get("Condition") or {}).items()
            if isinstance(block, Mapping)
            for key, wanted in block.items()
        )
        statements.append(
            Statement(
                index,
                str(raw.get("Sid", "")),
                str(raw.get("Effect", "")),
                principal_ok,
                _action(raw),
                conditions,
                principal_why,
            )
        )
    denied = any(s.effect == "Deny" and s.matches for s in statements)
    allowed = not denied and any(s.effect == "Allow" and s.matches for s in statements)
    return Evaluation(allowed, tuple(statements), tuple(broad_trust(policy, claims, provider_arn)))


def broad_trust(policy: Mapping[str, Any], claims: TokenClaims, provider_arn: str) -> list[Finding]:
    """Trust that admits more than this repository's steps."""
    findings = []
    for index, raw in enumerate(_list(policy.get("Statement", []))):
        if not isinstance(raw, Mapping) or raw.get("Effect") != "Allow" or not _action(raw):
            continue
        name = f"statement {index + 1}"
        principal_ok, _ = _principal(raw, provider_arn)
        principal = raw.get("Principal")
        if principal == "*" or (
            isinstance(principal, Mapping) and "*" in _list(principal.get("Federated", []))
        ):
            findings.append(
                Finding(
                    "error",
                    "principal-any",
                    f"{name} trusts any principal",
                    f'"Principal": {{"Federated": "{provider_arn}"}}',
                )
            )
        elif not principal_ok:
            others = _principals(principal)
            findings.append(
                Finding(
                    "warning",
                    "other-principal",
                    f"{name} lets {others or 'another principal'} assume this role with a web identity, "
                    "not this repository's Bitbucket provider",
                    "Remove the statement, or give that identity provider a role of its own.",
                )
            )
            continue
        keys: dict[str, list[str]] = {"aud": [], "sub": []}
        for operator, block in (raw.get("Condition") or {}).items():
            if not isinstance(block, Mapping) or "Not" in operator or operator.startswith("Null"):
                continue
            for key, wanted in block.items():
                prefix, _, short = key.rpartition(":")
                if prefix.lower() == claims.provider.lower() and short.lower() in keys:
                    keys[short.lower()].extend(str(w) for w in _list(wanted))
        if not keys["sub"]:
            findings.append(
                Finding(
                    "warning",
                    "no-sub",
                    f"{name} has no sub condition: every repository in the workspace can assume this role",
                    _fixed_line(f"{claims.provider}:sub", claims),
                )
            )
        elif any(w.strip() in ("*", "{*}:*", "*:*") for w in keys["sub"]):
            findings.append(
                Finding(
                    "warning",
                    "sub-any",
                    f"{name} lets any sub in ({', '.join(keys['sub'])})",
                    _fixed_line(f"{claims.provider}:sub", claims),
                )
            )
        if not keys["aud"]:
            findings.append(
                Finding(
                    "warning",
                    "no-aud",
                    f"{name} has no aud condition",
                    _fixed_line(f"{claims.provider}:aud", claims),
                )
            )
    return findings
