"""Evaluating a role's trust policy against a Bitbucket OIDC token, statement by statement:
principal, action and every condition, with the reason a condition fails and the line that
would make it pass. Pure: no AWS, no I/O.

Semantics follow IAM's: condition keys are case-insensitive, values case-sensitive (but for
the IgnoreCase operators); a key absent from the request fails every operator but the
negated ones, `...IfExists` and `ForAllValues:`; `Null` tests presence; an explicit Deny wins.
A condition the check cannot evaluate (an IAM operator other than String and Null, or a key
whose value only AWS knows: `aws:SourceIp`, `sts:RoleSessionName`) is "not evaluated": it
neither fails an Allow nor makes a Deny apply; AWS decides it at AssumeRoleWithWebIdentity.

Trust that is too broad is decided by the same evaluator, not by the spelling of a pattern: a
statement is too broad when it admits a made-up token of another repository, of another
workspace (another provider it trusts), or, in a deployment step, of another environment.
"""

# Over 300 lines: IAM's condition operators and globs, evaluated statement by statement, with the
# exact fix for each mismatch; and the breadth findings, which run that same evaluator on made-up
# foreign tokens. One evaluator, so the two cannot drift apart.

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
# Every condition operator IAM knows (the IAM JSON policy reference, "Condition operators"),
# each also with IfExists but Null; the ones not in OPERATORS are "not evaluated".
IAM_OPERATORS = OPERATORS | {
    f"{kind}{test}"
    for kind, tests in (
        (
            "Numeric",
            ("Equals", "NotEquals", "LessThan", "LessThanEquals", "GreaterThan", "GreaterThanEquals"),
        ),
        ("Date", ("Equals", "NotEquals", "LessThan", "LessThanEquals", "GreaterThan", "GreaterThanEquals")),
        ("Arn", ("Equals", "Like", "NotEquals", "NotLike")),
        ("", ("Bool", "BinaryEquals", "IpAddress", "NotIpAddress")),
    )
    for test in tests
}
# Prefixes of the keys STS sets from the request itself (aws:SourceIp, aws:CurrentTime,
# sts:RoleSessionName...): only AWS knows their values.
REQUEST_KEY_PREFIXES = ("aws", "sts")


@dataclass(frozen=True)
class Condition:
    operator: str  # as written, e.g. ForAnyValue:StringLike
    key: str
    wanted: tuple[str, ...]
    actual: str | None
    ok: bool  # True for a condition not evaluated: it does not fail an Allow
    why: str = ""
    fix: str = ""  # the corrected line, when one can be given
    evaluated: bool = True


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
        """Everything evaluated admits the token (conditions not evaluated taken as holding)."""
        return self.principal_ok and self.action_ok and all(c.ok for c in self.conditions)

    @property
    def unevaluated(self) -> tuple[Condition, ...]:
        return tuple(c for c in self.conditions if not c.evaluated)

    @property
    def denies(self) -> bool:
        """A Deny that certainly applies: one whose conditions were all evaluated."""
        return self.effect == "Deny" and self.matches and not self.unevaluated

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
        return next((s for s in self.statements if s.denies), None)


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
    known = base in IAM_OPERATORS and op != "NullIfExists"
    if not known or qualifier not in ("", "ForAnyValue", "ForAllValues"):
        return Condition(operator, key, wanted, actual, False, f"{operator} is not an IAM condition operator")
    if base not in OPERATORS:
        why = f"not evaluated: the check evaluates String and Null operators only, not {base}"
        return Condition(operator, key, wanted, actual, True, why, evaluated=False)
    if key.rpartition(":")[0].lower() in REQUEST_KEY_PREFIXES:
        why = f"not evaluated: STS sets {key} from the request, and only AWS knows its value"
        return Condition(operator, key, wanted, actual, True, why, evaluated=False)
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


def _statement(index: int, raw: Mapping[str, Any], claims: TokenClaims, provider_arn: str) -> Statement:
    principal_ok, principal_why = _principal(raw, provider_arn)
    conditions = tuple(
        _condition(operator, key, wanted, claims)
        for operator, block in (raw.get("Condition") or {}).items()
        if isinstance(block, Mapping)
        for key, wanted in block.items()
    )
    return Statement(
        index,
        str(raw.get("Sid", "")),
        str(raw.get("Effect", "")),
        principal_ok,
        _action(raw),
        conditions,
        principal_why,
    )


def evaluate(policy: Mapping[str, Any], *, claims: TokenClaims, provider_arn: str) -> Evaluation:
    statements = [
        _statement(index, raw, claims, provider_arn)
        for index, raw in enumerate(_list(policy.get("Statement", [])))
        if isinstance(raw, Mapping)
    ]
    denied = any(s.denies for s in statements)
    allowed = not denied and any(s.effect == "Allow" and s.matches for s in statements)
    findings = [*_not_evaluated(statements), *broad_trust(policy, claims, provider_arn)]
    return Evaluation(allowed, tuple(statements), tuple(findings))


def _not_evaluated(statements: Sequence[Statement]) -> list[Finding]:
    """The conditions the verdict does not rest on, of the statements that could apply."""
    return [
        Finding(
            "info",
            "not-evaluated",
            f"{statement.name} ({statement.effect}): {condition.operator} {condition.key} was "
            f"{condition.why}; AWS decides it at AssumeRoleWithWebIdentity",
        )
        for statement in statements
        if statement.principal_ok and statement.action_ok
        for condition in statement.unevaluated
    ]


def _other(value: str, shift: int = 1) -> str:
    """A made-up id of the same shape as ``value`` that differs from it at every letter and
    digit (a hex digit stays a hex digit): a UUID of another repository, say."""
    alphabets = ("0123456789abcdef", "ABCDEF", "ghijklmnopqrstuvwxyz", "GHIJKLMNOPQRSTUVWXYZ")

    def swap(char: str) -> str:
        alphabet = next((a for a in alphabets if char in a), "")
        return alphabet[(alphabet.index(char) + shift) % len(alphabet)] if alphabet else char

    return "".join(swap(char) for char in value)


def _token(claims: TokenClaims, sub: str, iss: str = "", aud: str = "") -> TokenClaims:
    return TokenClaims(iss=iss or claims.iss, aud=aud or claims.aud, sub=sub)


def other_repositories(claims: TokenClaims) -> list[TokenClaims]:
    """Made-up tokens of another repository of this workspace: a plain step, a deployment step."""
    repo = claims.repository_uuid or claims.sub.split(":", 1)[0]
    step = claims.sub.rsplit(":", 1)[-1]
    env = claims.deployment_environment_uuid or _other(step, 2)
    return [
        _token(claims, f"{_other(repo)}:{_other(step)}"),
        _token(claims, f"{_other(repo)}:{_other(env)}:{_other(step)}"),
    ]


def other_environments(claims: TokenClaims) -> list[TokenClaims]:
    """In a deployment step: made-up tokens of this repository in another deployment environment,
    and in a step with none."""
    if not claims.in_deployment:
        return []
    repo = claims.repository_uuid or claims.sub.split(":", 1)[0]
    step = claims.sub.rsplit(":", 1)[-1]
    return [
        _token(claims, f"{repo}:{_other(claims.deployment_environment_uuid)}:{_other(step)}"),
        _token(claims, f"{repo}:{_other(step)}"),
    ]


def other_workspace(claims: TokenClaims, provider_arn: str) -> TokenClaims:
    """A made-up token of another repository issued by the provider ``provider_arn`` names."""
    path = provider_arn.partition(":oidc-provider/")[2]
    aud = claims.aud.rpartition("/")
    return _token(
        claims, other_repositories(claims)[0].sub, f"https://{path}", aud[0] + aud[1] + _other(aud[2])
    )


def _admits(raw: Mapping[str, Any], claims: TokenClaims, provider_arn: str) -> bool:
    return _statement(0, raw, claims, provider_arn).matches


def broad_trust(policy: Mapping[str, Any], claims: TokenClaims, provider_arn: str) -> list[Finding]:
    """Trust that admits more than this repository's steps (in this deployment environment): the
    statements that admit a made-up token of another repository, another environment or another
    workspace, whatever the spelling of their conditions."""
    findings = []
    for index, raw in enumerate(_list(policy.get("Statement", []))):
        if not isinstance(raw, Mapping) or raw.get("Effect") != "Allow" or not _action(raw):
            continue
        name = f"statement {index + 1}"
        principal_ok, _ = _principal(raw, provider_arn)
        principal = raw.get("Principal")
        federated = (
            [str(p) for p in _list(principal.get("Federated", []))] if isinstance(principal, Mapping) else []
        )
        if principal == "*" or "*" in federated:
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
        findings += _too_broad(name, raw, claims, provider_arn)
        for other in sorted({p for p in federated if p not in (provider_arn, "*")}):
            if _admits(raw, other_workspace(claims, other), other):
                findings.append(
                    Finding(
                        "warning",
                        "other-workspace",
                        f"{name} trusts {other} too, and its conditions admit any token of that provider "
                        "(a condition on this provider's keys does not apply to its tokens)",
                        "Give that provider a statement, or a role, of its own, with conditions on its own "
                        "aud and sub keys.",
                    )
                )
        if not _wanted(raw, claims, "aud"):
            findings.append(
                Finding(
                    "warning",
                    "no-aud",
                    f"{name} has no aud condition",
                    _fixed_line(f"{claims.provider}:aud", claims),
                )
            )
    return findings


def _wanted(raw: Mapping[str, Any], claims: TokenClaims, short: str) -> list[str]:
    """The values a positive condition (not a Not..., not Null) of ``raw`` wants for this
    provider's ``short`` key."""
    wanted: list[str] = []
    for operator, block in (raw.get("Condition") or {}).items():
        if not isinstance(block, Mapping) or "Not" in operator or operator.startswith("Null"):
            continue
        for key, values in block.items():
            prefix, _, name = key.rpartition(":")
            if prefix.lower() == claims.provider.lower() and name.lower() == short:
                wanted.extend(str(w) for w in _list(values))
    return wanted


def _too_broad(name: str, raw: Mapping[str, Any], claims: TokenClaims, provider_arn: str) -> list[Finding]:
    """The statement admits a made-up token of another repository, or of another environment."""
    fix = _fixed_line(f"{claims.provider}:sub", claims)
    subs = _wanted(raw, claims, "sub")
    admitted = [t for t in other_repositories(claims) if _admits(raw, t, provider_arn)]
    if admitted and not subs:
        return [
            Finding(
                "warning",
                "no-sub",
                f"{name} has no sub condition: every repository in the workspace can assume this role",
                fix,
            )
        ]
    if admitted:
        return [
            Finding(
                "warning",
                "sub-any",
                f"{name} lets any repository's sub in ({', '.join(subs)} admits {admitted[0].sub}, "
                "a made-up sub of another repository)",
                fix,
            )
        ]
    admitted = [t for t in other_environments(claims) if _admits(raw, t, provider_arn)]
    if admitted:
        return [
            Finding(
                "warning",
                "other-environment",
                f"{name} admits this repository's steps outside deployment environment "
                f"{claims.deployment_environment_uuid} too ({', '.join(subs) or 'its conditions'} "
                f"admit {admitted[0].sub}, a made-up sub)",
                fix,
            )
        ]
    return []
