"""The rotation's plan: a pure function of what was read (``Facts``) and the age policy
(``Policy``). No I/O; ``pipe.rotation.executor`` reads the facts and carries the plan out.

States: clean (nothing due), due (rotate), resume (publish a known pair a stopped run left),
rollback (put every target back on a known pair), repair (targets may hold a mismatched pair and
no pair is known: a new key everywhere), busy (another run's marker is alive), blocked (no safe
step: say why and what recovers it).

The marker (``pipe.rotation.marker``) records what a run is doing, so the next run can finish it
whatever happened:
- ``phase=create``: no target has been touched. A key named here that nobody holds is resumed
  from the store, or deleted (its secret is lost and nobody can be using it).
- ``phase=publish``: targets are being written, the secret first, then the id. A target whose
  id does not name the key may hold its secret beside another id (a write was interrupted).
- ``scope=all``: the run rewrites every target, whatever its id says (a repair); every target
  is suspect until the run ends.

A user at IAM's 50-tag quota cannot be given the marker. The run then writes its claim (the
marker's text, naming no key) to the store's pending slot before it creates a key, and the
pending key replaces it (``pipe.stores``). A live claim makes other runs busy, as a marker does;
a dead one is read as a dead marker naming no key: a key created within its run's lifetime that
no target and no store holds is that run's, and is deleted (its secret is lost).
"""

# Over 300 lines: one pure decision; every state's case sits beside the others so they can be read
# against each other (tests/unit/test_rotation_plan.py follows them), each function short.

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from pipe.audit.state import DEACTIVATED_TAG
from pipe.credentials import Credentials
from pipe.rotation.marker import MARKER_TAG, Marker
from pipe.schema import default
from pipe.stores import StoreState

if TYPE_CHECKING:
    from pipe.config.rotation import RotationSettings

DAY = 86400.0
MAKE_ROOM_SLACK = 300.0
TAGS_PER_USER = 50  # IAM's quota: TagUser beyond it fails with LimitExceeded


@dataclass(frozen=True)
class AccessKey:
    id: str
    status: str  # Active | Inactive
    created: float
    last_used: float | None = None

    def age_days(self, now: float) -> float:
        return (now - self.created) / DAY


@dataclass(frozen=True)
class Facts:
    now: float
    user: str
    keys: tuple[AccessKey, ...]
    held: Mapping[str, str | None]  # target text -> key id it holds
    store: StoreState | None  # None: no store (STORE=none)
    marker: Marker | None
    own: Credentials | None = None  # the run's own credentials, when it runs with a long-lived key
    # When this pipe deactivated each key (the aws-credentials-pipe/deactivated tag, audit's format)
    deactivated: Mapping[str, date] = field(default_factory=dict)
    tag_keys: frozenset[str] = frozenset()  # the keys of the user's tags

    def can_tag(self, key: str) -> bool:
        """A tag ``key`` can be written: it is there already (replaced), or the user has room."""
        return key in self.tag_keys or len(self.tag_keys) < TAGS_PER_USER

    @property
    def self_service(self) -> bool:
        """The run's own credentials are one of the user's keys: the key being rotated."""
        return self.own is not None and any(k.id == self.own.access_key_id for k in self.keys)


@dataclass(frozen=True)
class Policy:
    rotate_after: int
    deactivate_after: int
    delete_after: int
    force: bool = False
    lease: float = float(default("ROTATION_LEASE_SECONDS"))  # a marker's heartbeat older than this is dead
    grace_days: float = float(default("ROTATION_GRACE_DAYS"))
    keep_old_key: bool = False

    @classmethod
    def from_settings(cls, settings: RotationSettings) -> Policy:
        return cls(
            settings.rotate_after,
            settings.deactivate_after,
            settings.delete_after,
            settings.force,
            float(settings.lease_seconds),
            float(settings.grace_days),
            settings.keep_old_key,
        )


@dataclass
class Plan:
    state: str  # clean | due | resume | rollback | repair | busy | blocked
    current: str | None
    rotate: bool = False
    resume: Credentials | None = None  # a known pair to (re)publish instead of a new key
    prove: bool = False  # prove ``resume`` works (GetCallerIdentity) before publishing it
    everywhere: bool = False  # rewrite every target, even those whose id already names the pair
    clear_marker: bool = False  # a dead run's marker
    clear_claim: bool = False  # a dead run's claim in the store (a user at the 50-tag quota)
    delete_first: list[tuple[str, str]] = field(default_factory=list)  # (key id, why)
    retire: list[tuple[str, str, str]] = field(default_factory=list)  # (deactivate|delete, key id, why)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    blocked: str = ""
    blocked_hint: str = ""
    has_store: bool = True

    @property
    def writes(self) -> bool:
        """The run writes targets (and so proves first that it can)."""
        return self.rotate or self.resume is not None

    def lines(self, held: Mapping[str, str | None]) -> list[str]:
        lines = [f"state: {self.state}" + (f"; current key {self.current}" if self.current else "")]
        lines += [f"  {target:<40} holds {key or '(nothing)'}" for target, key in held.items()]
        if self.writes:
            lines.append(
                f"  - prove every target{' and the store' if self.has_store else ''} can be written (no change)"
            )
        lines += [f"  - delete {key} first: {why}" for key, why in self.delete_first]
        if self.resume:
            which = "every target" if self.everywhere else "every target that does not hold it"
            proof = ", once GetCallerIdentity shows it works" if self.prove else ""
            lines.append(
                f"  - publish {self.resume.access_key_id} to {which}{proof} ({'; '.join(self.reasons)})"
            )
        if self.rotate:
            which = "every target (both variables)" if self.everywhere else "every target"
            stored = ", store it as pending" if self.has_store else ""
            promoted = ", promote it in the store" if self.has_store else ""
            lines.append(
                f"  - create a new key ({'; '.join(self.reasons)}){stored}, prove it works, "
                f"publish it to {which}{promoted}"
            )
        if self.clear_marker and not self.writes:
            lines.append("  - clear the marker a stopped rotation left")
        if self.clear_claim and not self.writes:
            lines.append("  - clear the claim a stopped rotation left in the store")
        lines += [f"  - {action} {key}: {why}" for action, key, why in self.retire]
        lines += [f"  . {note}" for note in self.notes]
        lines += [f"  ! {warning}" for warning in self.warnings]
        if not (
            self.writes
            or self.delete_first
            or self.retire
            or self.blocked
            or self.clear_marker
            or self.clear_claim
        ):
            lines.append("  - nothing to do")
        return lines


def make_plan(facts: Facts, policy: Policy) -> Plan:
    """Pure: what to do, from what was read."""
    now = facts.now
    keys = {k.id: k for k in facts.keys}
    named = Counter(v for v in facts.held.values() if v)
    known = _known(facts, keys)
    marker = facts.marker
    claim = facts.store.claim if facts.store else None

    if marker and marker.alive(now, policy.lease):
        return Plan("busy", None, blocked="another rotation of this user is in progress")
    if claim and claim.alive(now, policy.lease):
        return Plan(
            "busy", None, blocked="another rotation of this user is in progress (its claim is in the store)"
        )

    suspects = _suspects(facts, marker)
    if suspects:
        assert marker is not None
        plan = _repair(facts, keys=keys, named=named, known=known, marker=marker, suspects=suspects)
    elif len(named) > 1:
        plan = _mixed(facts, keys, named, known)
    else:
        plan = _single(facts, policy, keys=keys, named=named, known=known, marker=marker)
    plan.has_store = facts.store is not None
    if plan.blocked:
        return plan
    plan.clear_marker = marker is not None
    plan.clear_claim = claim is not None
    if plan.rotate:
        _make_room(plan, facts, keys, named)
        if plan.blocked:
            return plan
    _self_service(plan, facts, policy, keys)
    _retire(plan, facts, policy, keys, named)
    _tag_quota(plan, facts)
    return plan


def _tag_quota(plan: Plan, facts: Facts) -> None:
    """A user at IAM's 50-tag quota: the run acts all the same, and records best-effort. The
    marker cannot be added: with a store, the run's claim and then its pending key, in the
    store's pending slot, record the rotation (a run stopped before publishing is resumed from
    its key, or its key is deleted by the next run when it was never stored); without one, a
    stopped run's key would be known nowhere, so the run does not start. The day a key is deactivated cannot be added
    either: its recovery window then counts from the key's own dates (see _in_recovery_window)."""
    full = f"{facts.user} has {TAGS_PER_USER} tags (IAM's quota)"
    if (plan.writes or plan.delete_first) and not facts.can_tag(MARKER_TAG):
        if facts.store is None:
            plan.state = "blocked"
            plan.blocked = (
                f"{full}, so the rotation's marker cannot be added, and with STORE=none a run stopped "
                "after it created a key would leave that key known nowhere"
            )
            plan.blocked_hint = (
                f"Remove one tag of {facts.user}, or keep a store (leave STORE unset), then re-run."
            )
            return
        plan.notes.append(
            f"{full}: this run works without its marker. It writes its claim (start, run) to the store's "
            "pending slot before it creates a key, then the pending key in its place: a run stopped "
            "before publishing is resumed from that key, or its key (created within its lifetime, held "
            "nowhere) is deleted by the next run"
        )
    if any(action == "deactivate" for action, _, _ in plan.retire) and not facts.can_tag(DEACTIVATED_TAG):
        plan.notes.append(
            f"{full}: the day of the deactivation cannot be recorded; its recovery window counts from the "
            "key's own dates (its last use, and no earlier than ROTATION_GRACE_DAYS after the current key's creation)"
        )


def _known(facts: Facts, keys: Mapping[str, AccessKey]) -> dict[str, Credentials]:
    """Pairs whose secret this run knows: the store's, and the run's own key."""
    known: dict[str, Credentials] = {}
    if facts.store:
        for pair in (facts.store.current, facts.store.pending):
            if pair:
                known[pair.access_key_id] = pair
    if facts.own and facts.own.access_key_id in keys:
        known[facts.own.access_key_id] = facts.own
    return known


def _suspects(facts: Facts, marker: Marker | None) -> list[str]:
    """Targets that may hold a mismatched pair (one key's id beside another key's secret),
    because a dead run was writing them."""
    if marker is None:
        return []
    if marker.everywhere:
        return list(facts.held)
    if marker.phase == "publish" and marker.key:
        # A target that holds nothing held no working pair before either.
        return [target for target, held in facts.held.items() if held and held != marker.key]
    return []


def _newest_first(ids: Sequence[str], keys: Mapping[str, AccessKey]) -> list[str]:
    return sorted(ids, key=lambda k: -keys[k].created if k in keys else 0.0)


def _repair(
    facts: Facts,
    *,
    keys: Mapping[str, AccessKey],
    named: Counter[str],
    known: Mapping[str, Credentials],
    marker: Marker,
    suspects: list[str],
) -> Plan:
    """A dead run left targets that may hold a mismatched pair. Rewrite both variables of every
    such target with a pair whose secret is known (the in-flight key from the store first), or,
    knowing none, with a new key written to every target. Never end clean before that."""
    inflight = marker.key
    where = ", ".join(suspects)
    what = f"a rotation stopped while writing {inflight or 'a key'}: {where} may hold its secret beside another id"
    own = facts.own.access_key_id if facts.own else ""
    choice = inflight if inflight in known and inflight in keys else ""
    if not choice:
        choice = next((k for k in _newest_first(list(named), keys) if k in known and k in keys), "")
    if choice:
        everywhere = marker.everywhere or any(facts.held[t] == choice for t in suspects)
        plan = Plan(
            "resume" if choice == inflight else "rollback",
            choice,
            resume=known[choice],
            prove=choice != own,
            everywhere=everywhere,
            reasons=[what],
        )
        # Once every target holds the chosen pair, the keys being replaced, whose secret is lost
        # here, are deleted: the in-flight key, and with a rewrite of every target, any key but the
        # chosen one whose secret is not known (the key a stopped rollback was moving away from).
        # Not a key a target's id named: that target may hold it with its secret (a working,
        # published key that running steps use), so it stays active.
        for key in facts.keys:
            lost = key.id != choice and key.id not in known
            if not (lost and (key.id == inflight or marker.everywhere)):
                continue
            if key.id in named:
                plan.warnings.append(_kept_published(key.id, facts, choice))
            else:
                plan.retire.append(("delete", key.id, f"its secret is lost; every target now holds {choice}"))
        return plan
    if len(named) > 1:
        listing = "; ".join(f"{target} holds {key}" for target, key in facts.held.items())
        return Plan(
            "blocked",
            None,
            blocked=(
                f"The targets hold different keys and no secret of them is known here: {listing}. Also, {what}. "
                "Every key a target names stays active"
            ),
            blocked_hint=_KNOWN_PAIR_HINT,
        )
    # No pair is known: a new key, written to every target (both variables). Keys no target's id
    # names go first: their secret sits, if anywhere, beside another id, in a target that is
    # broken already and is rewritten now.
    current = next(iter(named), None)
    plan = Plan("repair", current, rotate=True, everywhere=True)
    for key in facts.keys:
        if key.id not in named:
            plan.delete_first.append((key.id, "no target's id names it and its secret is not known here"))
    plan.reasons.append(what + "; its secret is not known here, so every target gets a new key")
    return plan


def _kept_published(key: str, facts: Facts, choice: str) -> str:
    """Why a key the targets are moved away from stays active: a target held it, with its secret
    (the id is written last), so steps running with it would fail at once if it were deleted."""
    return (
        f"{key} was published ({_holders(facts, key)} held it) and may be in use by running steps: kept "
        f"active, though every target now holds {choice}. Deactivate it once nothing uses it (a "
        "rotation needs its slot)."
    )


_KNOWN_PAIR_HINT = (
    "Re-run this rotation from a step of one of these repositories (one that holds the newest key, "
    "so that no working key is left behind) with its own pair passed as "
    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (the run then rewrites every target with it), or keep "
    "a store (leave STORE unset) so a rotation can always resume."
)


def _mixed(
    facts: Facts,
    keys: Mapping[str, AccessKey],
    named: Counter[str],
    known: Mapping[str, Credentials],
) -> Plan:
    """Targets on more than one key, and no dead run's marker: a rotation stopped while
    publishing (or someone edited a target)."""
    ordered = _newest_first(list(named), keys)
    new = ordered[0]
    own = facts.own.access_key_id if facts.own else ""
    if new in known and new in keys:
        plan = Plan("resume", new, resume=known[new], prove=new != own)
        plan.reasons.append(f"the targets hold {', '.join(ordered)}")
        return plan
    old = next((k for k in ordered[1:] if k in known and k in keys), None)
    if old:
        # An id no longer proves its secret here: rolling back rewrites every target.
        plan = Plan("rollback", old, resume=known[old], prove=old != own, everywhere=True)
        plan.reasons.append(f"the secret of {new} is not known here")
        if new in keys:
            plan.warnings.append(_kept_published(new, facts, old))
        return plan
    where = "; ".join(f"{target} holds {key}" for target, key in facts.held.items())
    return Plan(
        "blocked",
        None,
        blocked=(
            f"The targets hold different keys and no secret of them is known here: {where}. "
            "Both keys stay active, so every target still works"
        ),
        blocked_hint=_KNOWN_PAIR_HINT,
    )


def _single(
    facts: Facts,
    policy: Policy,
    *,
    keys: Mapping[str, AccessKey],
    named: Counter[str],
    known: Mapping[str, Credentials],
    marker: Marker | None,
) -> Plan:
    current = next(iter(named), None)
    if current is None and facts.store and facts.store.current:
        current = facts.store.current.access_key_id
    plan = Plan("clean", current)
    resumed = _unpublished(plan, facts, named=named, known=known, marker=marker, lease=policy.lease)
    if resumed is not None:
        return resumed
    plan.reasons += _due(facts, policy, keys.get(current) if current else None, current)
    plan.rotate = bool(plan.reasons)
    if plan.rotate:
        plan.state = "due"
    else:
        _fill_empty(plan, facts, known)
    return plan


def _unpublished(
    plan: Plan,
    facts: Facts,
    *,
    named: Counter[str],
    known: Mapping[str, Credentials],
    marker: Marker | None,
    lease: float,
) -> Plan | None:
    """Keys of ours that were created and never published: resumed when the secret is known (the
    plan to follow instead), else deleted first (nobody can be using them)."""
    pending = facts.store.pending.access_key_id if facts.store and facts.store.pending else ""
    claim = facts.store.claim if facts.store else None
    for key in facts.keys:
        if key.id in named or key.id == plan.current:
            continue
        if not (_ours(key, pending, marker, lease) or (claim is not None and _ours(key, "", claim, lease))):
            continue
        if key.id in known:
            resumed = Plan("resume", key.id, resume=known[key.id], prove=True)
            resumed.reasons.append(f"a rotation stopped before it published {key.id}")
            return resumed
        plan.delete_first.append(
            (key.id, "created by a rotation that stopped before publishing it; its secret is lost")
        )
    return None


def _ours(key: AccessKey, pending: str, marker: Marker | None, lease: float) -> bool:
    """A key a rotation created: the store's pending key, the marker's, or (a marker naming
    none) one created while the marker's run was alive: from its start (less a slack for clock
    skew) to its last heartbeat plus a lease. A claim in the store (a user at the 50-tag quota)
    is read so too: it names no key. The run creates its key right after it writes the marker
    (or the claim), and names it at once; a key created later is someone else's (an admin's)
    and is never deleted as a stopped run's. The last heartbeat may read 0 (a failing run hands its
    marker over so), so the start counts as a heartbeat too."""
    if key.id == pending:
        return True
    if marker is None:
        return False
    if marker.key:
        return key.id == marker.key
    alive_until = max(marker.started, marker.beat) + max(lease, MAKE_ROOM_SLACK)
    return marker.started - MAKE_ROOM_SLACK <= key.created <= alive_until


def _due(facts: Facts, policy: Policy, current_key: AccessKey | None, current: str | None) -> list[str]:
    """Why a new key is due (none: it is not)."""
    reasons = ["FORCE_ROTATE=true"] if policy.force else []
    if current is None:
        reasons.append("no target holds a key yet")
    elif current_key is None:
        reasons.append(f"the targets hold {current}, which is not a key of {facts.user} (deleted?)")
    elif current_key.status != "Active":
        reasons.append(f"the targets hold {current}, which is inactive")
    elif current_key.age_days(facts.now) >= policy.rotate_after:
        reasons.append(
            f"{current} is {current_key.age_days(facts.now):.0f} days old (ROTATE_AFTER_DAYS={policy.rotate_after})"
        )
    return reasons


def _fill_empty(plan: Plan, facts: Facts, known: Mapping[str, Credentials]) -> None:
    """Targets that hold nothing yet (new in TARGETS) get the current key when its secret is
    known; so does a store that does not hold it as current yet."""
    current = plan.current
    if not current:
        return
    empty = [target for target, held in facts.held.items() if held is None]
    store = facts.store
    lags = store is not None and (store.current is None or store.current.access_key_id != current)
    if current in known and (empty or lags):
        plan.resume = known[current]
        plan.prove = facts.own is None or facts.own.access_key_id != current
        if empty:
            plan.reasons.append(f"{', '.join(empty)} hold nothing yet")
        if lags:
            plan.reasons.append(f"the store does not hold {current} as current yet")
    elif empty:
        plan.warnings.append(
            f"{', '.join(empty)} hold nothing and the secret of {current} is not known here: they get the next "
            "key (FORCE_ROTATE=true publishes a new key everywhere now)."
        )


def _make_room(plan: Plan, facts: Facts, keys: Mapping[str, AccessKey], named: Counter[str]) -> None:
    """IAM allows two keys per user: delete an inactive key nobody holds, or stop."""
    now = facts.now
    gone = {key for key, _ in plan.delete_first}
    remaining = [k for k in facts.keys if k.id not in gone]
    if len(remaining) < 2:
        return
    spare = next(
        (k for k in remaining if k.status == "Inactive" and k.id not in named and k.id != plan.current),
        None,
    )
    if spare is None:
        listing = ", ".join(
            f"{k.id} ({k.status.lower()}, {k.age_days(now):.0f} days, held by {_holders(facts, k.id)})"
            for k in remaining
        )
        plan.state = "blocked"
        plan.blocked = f"{facts.user} has two active keys ({listing}); a new key needs a free slot"
        plan.blocked_hint = (
            "Deactivate the key no target uses (or wait for DEACTIVATE_AFTER_DAYS), then re-run."
        )
        return
    plan.delete_first.append((spare.id, "inactive; makes room for the new key"))


def _self_service(plan: Plan, facts: Facts, policy: Policy, keys: Mapping[str, AccessKey]) -> None:
    """A person rotating their own key into profiles (seed 002): the old key is deleted once
    the new key works and every target holds it, unless KEEP_OLD_KEY=true."""
    own = facts.own.access_key_id if facts.own else ""
    if not (plan.rotate and own in keys and facts.held):
        return
    if not all(target.startswith("profile:") for target in facts.held):
        return
    if policy.keep_old_key:
        plan.notes.append(f"{own} (this run's own key) is kept: KEEP_OLD_KEY=true")
        return
    plan.retire.append(
        ("delete", own, "self-service: this run's own key, replaced by the new key in every profile")
    )


def _retire(
    plan: Plan, facts: Facts, policy: Policy, keys: Mapping[str, AccessKey], named: Counter[str]
) -> None:
    """Retirement by age. A previous key is deactivated only when this run publishes nothing,
    the current key has been current for ROTATION_GRACE_DAYS (IAM's last-used date lags by hours,
    and running pipelines still hold the previous key), and the previous key was not used since
    the current key was created. An inactive key is deleted at DELETE_AFTER_DAYS."""
    now = facts.now
    handled = {key for key, _ in plan.delete_first} | {key for _, key, _ in plan.retire}
    previous = [k for k in facts.keys if k.id not in named and k.id != plan.current and k.id not in handled]
    current_key = keys.get(plan.current) if plan.current else None
    for key in previous:
        age = key.age_days(now)
        if key.status == "Active" and age >= policy.deactivate_after:
            if plan.writes:
                plan.notes.append(
                    f"{key.id} is {age:.0f} days old: kept active, never deactivated by a run that publishes a key"
                )
            elif current_key is None:
                continue
            elif current_key.age_days(now) < policy.grace_days:
                plan.notes.append(
                    f"{key.id} is {age:.0f} days old: kept active until {current_key.id} is "
                    f"ROTATION_GRACE_DAYS={policy.grace_days:g} days old "
                    f"(it is {current_key.age_days(now):.1f})"
                )
            elif key.last_used is not None and key.last_used > current_key.created:
                plan.warnings.append(
                    f"{key.id} is {age:.0f} days old but was used on {_date(key.last_used)}, after the current key "
                    "was created: kept active. Find what still uses it."
                )
            else:
                plan.retire.append(
                    ("deactivate", key.id, f"{age:.0f} days old, unused since the current key was created")
                )
        elif key.status == "Inactive" and age >= policy.delete_after:
            if _in_recovery_window(plan, facts, policy, key):
                continue
            plan.retire.append(
                (
                    "delete",
                    key.id,
                    f"inactive and {age:.0f} days old (DELETE_AFTER_DAYS={policy.delete_after})",
                )
            )


def _in_recovery_window(plan: Plan, facts: Facts, policy: Policy, key: AccessKey) -> bool:
    """A key this pipe deactivated is deleted only once it has been inactive for
    DELETE_AFTER_DAYS - DEACTIVATE_AFTER_DAYS days, counted from the end of the recorded day (a
    key deactivated late, for its grace period or its use, keeps the whole window). A key with no
    date recorded (deactivated by someone else) goes by its age alone."""
    since = facts.deactivated.get(key.id)
    window = policy.delete_after - policy.deactivate_after
    if since is None:
        if facts.can_tag(DEACTIVATED_TAG):
            return False
        # The user is at the tag quota, so this pipe could not record the day: the earliest day the
        # key can have been deactivated, by its own dates (it was active when last used; this pipe
        # deactivates a previous key only once the current one is ROTATION_GRACE_DAYS old).
        current = next((k for k in facts.keys if k.id == plan.current), None)
        earliest = max(key.last_used or 0.0, current.created + policy.grace_days * DAY if current else 0.0)
        if (facts.now - earliest) / DAY >= window:
            return False
        plan.notes.append(
            f"{key.id} is inactive with no day recorded ({facts.user} has {TAGS_PER_USER} tags): deleted once "
            f"{window} days have passed since {_date(earliest)}, the earliest day its own dates allow for its "
            "deactivation, so it can still be reactivated until then"
        )
        return True
    start = datetime(since.year, since.month, since.day, tzinfo=UTC) + timedelta(days=1)
    inactive = (facts.now - start.timestamp()) / DAY
    if inactive >= window:
        return False
    plan.notes.append(
        f"{key.id} was deactivated on {since.isoformat()}: deleted once it has been inactive {window} days "
        "(DELETE_AFTER_DAYS - DEACTIVATE_AFTER_DAYS), so it can still be reactivated until then"
    )
    return True


def _holders(facts: Facts, key: str) -> str:
    names = [target for target, held in facts.held.items() if held == key]
    return ", ".join(names) if names else "no target"


def _date(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")
