"""The audit's plan for one user: a pure function of what was read (``User``) and the policy
(``Policy``). The same plan serves every mode: `report` and DRY_RUN print it, `enforce` and
`revoke` carry it out (pipe.audit.executor). No I/O.

enforce (ages in whole days since the key was created):
- a key a stopped run created and never delivered (``state.InFlight``) is deleted, and the rest
  is planned without it (so it is created again);
- an Inactive key at least DELETE_AFTER_DAYS old is deleted once it has been inactive for the
  recovery window (DELETE_AFTER_DAYS - DEACTIVATE_AFTER_DAYS days), counted from the later of
  the date audit deactivated it (its tag) and its last use, else from its creation;
- an Active key at least DEACTIVATE_AFTER_DAYS old is deactivated; it is never deleted in the
  same run (only Inactive keys are), nor the next day (the window is at least one day). Not while
  its replacement (a newer Active key, or the key this run creates) is younger than a day: the
  user fetches the new key with the old one, so the old key is deactivated at the first run on a
  later day (UTC) than the replacement was created (a daily schedule: the next day);
- the newest Active key at least ROTATE_AFTER_DAYS old, with no newer key: a new key is created
  and delivered, unless the user would then have more than two keys (said, not done);
- an Active key that will be deactivated within NOTIFY_BEFORE_DAYS: the user is warned once.
revoke: every Active key is deactivated, every Inactive key deleted; never both to one key.

Who: a user tagged ``aws-credentials-protected`` (any value) is reported ``protected`` and never
changed: the templates deny every key change on it (an IAM fence the audit role cannot lift). A
member of EXEMPT_GROUP is never changed. A user tagged as rotate's
(``aws-credentials-pipe/managed`` = ``rotate``, or a rotation marker) is left to rotate only while
its newest Active key is younger than DEACTIVATE_AFTER_DAYS (rotate is doing its job): the tags
are the user's own to write (templates/self-service.yaml), so they exempt nobody from the age
policy, and never from revoke (an explicit list of users; EXEMPT_GROUP is the exemption).

A stopped run's key in flight is settled by enforce only (it alone reads the user's secret);
report and revoke plan it as any other key and leave the tag. A key in flight the secret holds
is announced only while Active (revoke may have deactivated it since); otherwise it is planned
as any other key.
"""

# Over 300 lines: one pure plan; each rule of the age policy, and who it applies to, sits beside
# the others so they read as the contract's list.

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from pipe.audit import state
from pipe.config.audit import EMAIL
from pipe.templates import PROTECTED_TAG

DAY = 86400.0
MAX_TAGS = 50  # IAM's quota of tags per user
TAG_LIMIT_NOTE = "state not recorded: user at IAM's 50-tag limit"
_SECRET_NAME = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+=.@-")


@dataclass(frozen=True)
class Key:
    id: str | None  # None: read from the credential report, which has no key ids
    status: str  # Active | Inactive
    created: float
    last_used: float | None = None

    def age(self, now: float) -> int:
        """Whole days since creation."""
        return int((now - self.created) // DAY)

    @property
    def active(self) -> bool:
        return self.status == "Active"


@dataclass(frozen=True)
class User:
    name: str
    arn: str
    tags: Mapping[str, str]
    groups: frozenset[str]
    keys: tuple[Key, ...]
    listed: bool = False  # the keys come from ListAccessKeys (ids known), not the credential report
    secret_holds: str | None = None  # the key id the user's secret holds (read for keys in flight)
    secret_flight: str | None = None  # the in-flight tag on the user's secret (no room in IAM's tags)


@dataclass(frozen=True)
class Policy:
    mode: str  # report | enforce | revoke
    rotate_after: int
    deactivate_after: int
    delete_after: int
    notify_before: int
    now: float
    exempt_group: str | None = None
    email_tag: str = "email"
    notify: bool = False  # NOTIFY_FROM is set
    secret_prefix: str = "aws-credentials/"

    @property
    def window(self) -> int:
        """The recovery window: days a key stays inactive before it may be deleted."""
        return self.delete_after - self.deactivate_after

    @property
    def today(self) -> date:
        return datetime.fromtimestamp(self.now, UTC).date()

    def on(self, created: float, days: int) -> date:
        """The date a key created at ``created`` is ``days`` days old."""
        return (datetime.fromtimestamp(created, UTC) + timedelta(days=days)).date()


@dataclass
class Action:
    action: str  # create | deliver | deactivate | delete | notify
    key: str | None
    reason: str
    done: bool = False

    def document(self) -> dict[str, object]:
        return {"action": self.action, "access_key_id": self.key, "reason": self.reason, "done": self.done}


@dataclass
class UserPlan:
    user: str
    status: str  # audited | exempt | managed | protected
    email: str | None
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: dict[str, date] = field(default_factory=dict)  # key id (or "") -> its deactivation date
    announce: str = ""  # a new key a stopped run delivered and nobody announced
    in_flight: state.InFlight | None = None  # a stopped run's tag, taken off when this run acts
    flight_on_secret: bool = False  # that tag is on the user's secret (pipe.audit.delivery.mark)
    deactivated: dict[str, date] = field(default_factory=dict)  # audit's deactivation dates (tag)
    notified: state.Notified = field(default_factory=state.Notified)
    deferred: dict[str, date] = field(default_factory=dict)  # key id -> the day its deactivation is due
    overruled: bool = False  # rotate's tag overruled: its keys are read again before acting on it

    def of(self, kind: str) -> list[Action]:
        return [a for a in self.actions if a.action == kind]

    @property
    def changes(self) -> bool:
        return any(a.action in ("create", "deactivate", "delete") for a in self.actions)

    @property
    def needs_keys(self) -> bool:
        """The user needs an action, a warning or a clean-up: list its keys (ids) before acting."""
        # A deferred deactivation too: its note names the key, and the credential report has no ids.
        return bool(
            self.actions
            or self.warnings
            or self.in_flight
            or self.announce
            or self.overruled
            or self.deferred
        )


def no_room(tags: Mapping[str, str]) -> bool:
    """The user has no room for the in-flight tag among IAM's 50: it goes on their secret."""
    return state.AUDIT_TAG not in tags and len(tags) >= MAX_TAGS


def email_of(tags: Mapping[str, str], tag: str) -> str | None:
    value = tags.get(tag, "").strip()
    return value if EMAIL.match(value) else None


def secret_name(prefix: str, user: str) -> str | None:
    """The user's secret, or None when Secrets Manager would refuse the name (IAM allows a comma
    in user names, Secrets Manager does not)."""
    name = prefix + user
    return name if set(name) <= _SECRET_NAME and len(name) <= 512 else None


def _who(user: User, policy: Policy) -> tuple[str, str]:
    """The user's status (audited | exempt | managed | protected), and a note when rotate's tag is
    overruled."""
    if PROTECTED_TAG in user.tags:
        return "protected", ""
    tagged = state.managed(user.tags)
    active = [k for k in user.keys if k.active]
    newest = max(active, key=lambda k: k.created) if active else None
    fresh = newest is not None and newest.age(policy.now) < policy.deactivate_after
    if tagged and policy.mode != "revoke" and fresh:
        return "managed", ""
    if policy.exempt_group and policy.exempt_group in user.groups:
        return "exempt", ""
    if not tagged:
        return "audited", ""
    if policy.mode == "revoke":
        return "audited", "tagged as managed by rotate: AUDIT_MODE=revoke revokes it all the same"
    if newest is None:
        return "audited", "tagged as managed by rotate, but it has no Active key: audited"
    return "audited", f"managed by rotate, but its newest key is {newest.age(policy.now)} days old: audited"


def plan(user: User, policy: Policy) -> UserPlan:
    """The user's plan. Exempt and managed users get none."""
    status, overruled = _who(user, policy)
    flight = state.InFlight.parse(user.tags.get(state.AUDIT_TAG))
    on_secret = flight is None and user.secret_flight is not None
    if on_secret:
        flight = state.InFlight.parse(user.secret_flight)
    result = UserPlan(
        user.name,
        status,
        email_of(user.tags, policy.email_tag),
        in_flight=flight if policy.mode == "enforce" else None,
        flight_on_secret=on_secret and flight is not None and policy.mode == "enforce",
        deactivated=state.parse_dates(user.tags.get(state.DEACTIVATED_TAG)),
        notified=state.Notified.parse(user.tags.get(state.NOTIFIED_TAG)),
    )
    if status != "audited":
        result.in_flight = None  # never changed: a stopped run's key is left to whoever manages it
        result.flight_on_secret = False
        return result
    if overruled:
        # The credential report may be hours old (rotate may have made a key since): decided
        # again on ListAccessKeys.
        result.overruled = not user.listed
        result.notes.append(overruled)
    if flight is not None and result.in_flight is None:
        # Only enforce settles a stopped run's key: which key the user's secret holds takes
        # DescribeSecret, which only the enforce role may call. report and revoke leave the tag.
        result.notes.append(
            f"a key from an enforce run that stopped ({state.AUDIT_TAG}: {flight.tag()}): the next "
            "AUDIT_MODE=enforce run deletes it unless the user's secret holds it"
        )
    keys = _in_flight(user, result)
    if policy.mode == "revoke":
        _revoke(keys, result)
    else:
        _enforce(user, keys, policy, result)
    _notify(user, policy, result)
    _tag_room(user, result)
    return result


def _tag_room(user: User, result: UserPlan) -> None:
    """Say when audit's state tags will not fit: IAM refuses a user's 51st tag. The actions are
    carried out all the same: the in-flight record goes on the user's secret instead (which
    always has room for it), the rest is recorded best-effort (pipe.audit.executor)."""
    needed = {state.AUDIT_TAG} if result.of("create") else set()
    needed |= {state.DEACTIVATED_TAG} if result.of("deactivate") else set()
    needed |= {state.NOTIFIED_TAG} if result.of("notify") else set()
    missing = needed - set(user.tags)
    if missing and len(user.tags) + len(missing) > MAX_TAGS:
        # The in-flight tag is written first: it fits unless the user has no room at all.
        secret = state.AUDIT_TAG in missing and no_room(user.tags)
        left = sorted(missing - {state.AUDIT_TAG})
        where = f"the key in flight is recorded on the user's secret ({state.AUDIT_TAG})" if secret else ""
        lost = (
            ", ".join(left) + " not written (deletion counts from the key's last use; a warning may "
            "be sent again)"
            if left
            else ""
        )
        result.notes.append(
            f"{TAG_LIMIT_NOTE} ({len(user.tags)} tags): acted on all the same; "
            + "; ".join(p for p in (where, lost) if p)
        )


def _in_flight(user: User, result: UserPlan) -> list[Key]:
    """Delete the key of a stopped run that the user's secret does not hold; the keys left."""
    flight = result.in_flight
    keys = list(user.keys)
    if flight is None or not user.listed:
        return keys
    # A run creates one key: unnamed, it is the first one made in the window (a user's own key
    # made minutes later is not taken for it).
    covered = sorted(
        (k for k in user.keys if k.id and flight.covers(k.id, k.created)), key=lambda k: k.created
    )
    for key in covered[:1]:
        if key.id and user.secret_holds == key.id:
            if not key.active:
                result.notes.append(
                    f"{key.id}: delivered by an audit run that stopped, but now {key.status}: not "
                    "announced; planned as any other key"
                )
            elif result.notified.new != key.id:
                result.announce = key.id  # delivered, never announced
            continue
        keys.remove(key)
        result.actions.append(
            Action(
                "delete", key.id, "created by an audit run that stopped before delivering it: nobody holds it"
            )
        )
    return keys


def _revoke(keys: list[Key], result: UserPlan) -> None:
    for key in keys:
        if key.active:
            result.actions.append(Action("deactivate", key.id, "AUDIT_MODE=revoke"))
        else:
            result.actions.append(Action("delete", key.id, "AUDIT_MODE=revoke: inactive"))


def _enforce(user: User, keys: list[Key], policy: Policy, result: UserPlan) -> None:
    kept = [key for key in keys if not _delete(key, policy, result)]
    creates = _rotate(user, kept, policy, result)
    for key in kept:
        age = key.age(policy.now)
        if not key.active or age < policy.deactivate_after:
            continue
        newer = [k for k in kept if k.active and k.created > key.created]
        made = policy.today if creates else max(_day(k.created) for k in newer) if newer else None
        if made is not None and made >= policy.today:
            due = made + timedelta(days=1)
            result.deferred[key.id or ""] = due
            what = "the new key this run creates" if creates else "its replacement"
            result.notes.append(
                f"{key.id or 'an active key'}: {age} days old (>= {policy.deactivate_after}), deactivated "
                f"on {due.isoformat()} (the first run from then on), once {what} is a day old: the "
                "user fetches the new key with the old one"
            )
            continue
        at = next((i for i, a in enumerate(result.actions) if a.action == "create"), len(result.actions))
        result.actions.insert(
            at, Action("deactivate", key.id, f"{age} days old (>= {policy.deactivate_after})")
        )
    _warn(kept, policy, result)


def _day(when: float) -> date:
    return datetime.fromtimestamp(when, UTC).date()


def _inactive_days(key: Key, policy: Policy, result: UserPlan) -> tuple[int, str]:
    """How long the key has been inactive, as far as anyone can tell, and since what."""
    recorded = result.deactivated.get(key.id or "")
    used = _day(key.last_used) if key.last_used is not None else None
    if recorded is not None and (used is None or used <= recorded):
        return (policy.today - recorded).days, f"deactivated by audit on {recorded.isoformat()}"
    if key.last_used is not None:
        days = int((policy.now - key.last_used) // DAY)
        return days, f"last used {days} days ago"
    return key.age(policy.now), "never used"


def _delete(key: Key, policy: Policy, result: UserPlan) -> bool:
    """An Inactive key past DELETE_AFTER_DAYS and its recovery window: planned for deletion."""
    if key.active:
        return False
    age = key.age(policy.now)
    if age < policy.delete_after:
        return False
    inactive, since = _inactive_days(key, policy, result)
    if inactive < policy.window:
        result.notes.append(
            f"{key.id or 'an inactive key'}: {age} days old, {since}: deleted once inactive for "
            f"{policy.window} days"
        )
        return False
    result.actions.append(
        Action("delete", key.id, f"inactive, {age} days old (>= {policy.delete_after}); {since}")
    )
    return True


def _rotate(user: User, keys: list[Key], policy: Policy, result: UserPlan) -> bool:
    """Plan a new key when the newest is due; whether one is planned."""
    active = [k for k in keys if k.active]
    if not active:
        return False
    newest = max(active, key=lambda k: k.created)
    age = newest.age(policy.now)
    if age < policy.rotate_after or any(k.created > newest.created for k in keys):
        return False
    if len(keys) >= 2:
        result.notes.append(
            f"{newest.id or 'the newest key'} is {age} days old (>= {policy.rotate_after}) but "
            f"{user.name} already has two keys: no new key is created (IAM allows two)"
        )
        return False
    name = secret_name(policy.secret_prefix, user.name)
    if name is None:
        result.notes.append(
            f"no new key: Secrets Manager refuses the secret name {policy.secret_prefix + user.name!r}"
        )
        return False
    why = f"{newest.id or 'the newest key'} is {age} days old (>= {policy.rotate_after})"
    result.actions.append(Action("create", None, why))
    result.actions.append(Action("deliver", None, f"into the secret {name}, readable by {user.name} only"))
    return True


def _warn(keys: list[Key], policy: Policy, result: UserPlan) -> None:
    if policy.notify_before <= 0:
        return
    for key in keys:
        age = key.age(policy.now)
        left = policy.deactivate_after - age
        if key.active and 0 < left <= policy.notify_before and key.id not in result.notified.warned:
            result.warnings[key.id or ""] = policy.on(key.created, policy.deactivate_after)


def _notify(user: User, policy: Policy, result: UserPlan) -> None:
    if not policy.notify or not (result.actions or result.warnings or result.announce):
        return
    if result.email is None:
        tag = policy.email_tag
        given = user.tags.get(tag)
        result.notes.append(
            f"not notified: the {tag} tag is not an e-mail address"
            if given
            else f"not notified: no {tag} tag"
        )
        return
    words = {"create": "a new key", "deactivate": "{} deactivated", "delete": "{} deleted"}
    parts = [words[a.action].format(a.key or "a key") for a in result.actions if a.action in words]
    if result.announce:
        parts.append(f"a new key ({result.announce})")
    later = result.warnings | (result.deferred if result.of("create") or result.announce else {})
    parts += [f"{k or 'a key'} to be deactivated on {d.isoformat()}" for k, d in later.items()]
    result.actions.append(Action("notify", None, f"e-mail {result.email}: " + "; ".join(parts)))
