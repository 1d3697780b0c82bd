"""ACTION=rotate and ACTION=sync. Decide, then act.

1. Gather facts (read only): the user's keys with status, age and last use; the key id each
   target holds; what the store holds (pending / current); the pending marker on the user.
2. Plan (pure): derive the state and the steps, print them. DRY_RUN stops here.
3. Act, in an order that keeps every target on a working key: prove every target and the store
   can be written, take the lease (the marker, refreshed by a heartbeat while the run works),
   make room, create, store as pending, prove the key works, publish, promote, clear the
   marker, retire old keys by the age policy (never deactivating in a run that publishes).

The marker records what a run is doing, so the next run can finish it whatever happened:
- ``phase=create``: no target has been touched. A key named here that nobody holds is resumed
  from the store, or deleted (its secret is lost and nobody can be using it).
- ``phase=publish``: targets are being written, the secret first, then the id. A target whose
  id does not name the key may hold its secret beside another id (a write was interrupted).
- ``scope=all``: the run rewrites every target, whatever its id says (a repair); every target
  is suspect until the run ends.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipe.config import KeyPair, RotationSettings
from pipe.errors import PipeError, aws_error
from pipe.targets import StoreState, Target

MARKER_TAG = "aws-credentials-pipe/rotation"
DAY = 86400.0
LEASE_SECONDS = 300.0  # a marker whose heartbeat is older belongs to a run that died
MAKE_ROOM_SLACK = 300.0
PHASES = ("create", "publish")
_KEY_ID = re.compile(r"[A-Z0-9]{16,128}")
_NUMBER = re.compile(r"[0-9]{1,12}")
_RUN_ID = re.compile(r"[0-9a-f]{1,32}")


class StateError(PipeError):
    kind = "state"


@dataclass(frozen=True)
class AccessKey:
    id: str
    status: str  # Active | Inactive
    created: float
    last_used: float | None = None

    def age_days(self, now: float) -> float:
        return (now - self.created) / DAY


@dataclass(frozen=True)
class Marker:
    """The pending marker: an IAM user tag. Its value holds only what IAM allows in a tag value
    (letters, digits, spaces and ``_ . : / = + - @``): ``key=AKIA... started=1764500000
    beat=1764500100 phase=publish scope=all run=3f2a9c1b``. Never a secret."""

    started: float
    beat: float
    key: str = ""
    phase: str = "create"
    everywhere: bool = False  # scope=all
    run: str = ""

    def alive(self, now: float, lease: float) -> bool:
        return now - self.beat < lease

    def tag(self) -> str:
        parts = [f"key={self.key}"] if self.key else []
        parts += [f"started={int(self.started)}", f"beat={int(self.beat)}", f"phase={self.phase}"]
        if self.everywhere:
            parts.append("scope=all")
        if self.run:
            parts.append(f"run={self.run}")
        return " ".join(parts)

    @staticmethod
    def parse(text: str | None) -> Marker | None:
        """The marker a tag value describes; None for anything else (an unparsable value is no
        marker: it never stops a run, and never makes one delete a key)."""
        if not text or len(text) > 256:
            return None
        fields: dict[str, str] = {}
        for part in text.split():
            name, sep, value = part.partition("=")
            if not sep or name in fields:
                return None
            fields[name] = value
        started, beat = fields.get("started", ""), fields.get("beat", fields.get("started", ""))
        key, phase = fields.get("key", ""), fields.get("phase", "create")
        scope, run = fields.get("scope", ""), fields.get("run", "")
        if not (_NUMBER.fullmatch(started) and _NUMBER.fullmatch(beat)):
            return None
        if (key and not _KEY_ID.fullmatch(key)) or phase not in PHASES or scope not in ("", "all"):
            return None
        if run and not _RUN_ID.fullmatch(run):
            return None
        return Marker(float(started), float(beat), key, phase, scope == "all", run)


@dataclass(frozen=True)
class Facts:
    now: float
    user: str
    keys: tuple[AccessKey, ...]
    held: Mapping[str, str | None]  # target text -> key id it holds
    store: StoreState | None  # None: no store (STORE=none)
    marker: Marker | None
    own: KeyPair | None = None  # the run's own credentials, when they are one of the user's keys


@dataclass(frozen=True)
class Policy:
    rotate_after: int
    deactivate_after: int
    delete_after: int
    force: bool = False
    lease: float = LEASE_SECONDS
    grace_days: float = 7
    keep_old_key: bool = False


@dataclass
class Plan:
    state: str  # clean | due | resume | rollback | repair | busy | blocked
    current: str | None
    rotate: bool = False
    resume: KeyPair | None = None  # a known pair to (re)publish instead of a new key
    prove: bool = False  # prove ``resume`` works (GetCallerIdentity) before publishing it
    everywhere: bool = False  # rewrite every target, even those whose id already names the pair
    clear_marker: bool = False  # a dead run's marker
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
        lines += [f"  - {action} {key}: {why}" for action, key, why in self.retire]
        lines += [f"  . {note}" for note in self.notes]
        lines += [f"  ! {warning}" for warning in self.warnings]
        if not (self.writes or self.delete_first or self.retire or self.blocked or self.clear_marker):
            lines.append("  - nothing to do")
        return lines


def make_plan(facts: Facts, policy: Policy) -> Plan:
    """Pure: what to do, from what was read."""
    now = facts.now
    keys = {k.id: k for k in facts.keys}
    named = Counter(v for v in facts.held.values() if v)
    known = _known(facts, keys)
    marker = facts.marker

    if marker and marker.alive(now, policy.lease):
        return Plan("busy", None, blocked="another rotation of this user is in progress")

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
    if plan.rotate:
        _make_room(plan, facts, keys, named)
        if plan.blocked:
            return plan
    _self_service(plan, facts, policy, keys)
    _retire(plan, facts, policy, keys, named)
    return plan


def _known(facts: Facts, keys: Mapping[str, AccessKey]) -> dict[str, KeyPair]:
    """Pairs whose secret this run knows: the store's, and the run's own key."""
    known: dict[str, KeyPair] = {}
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
    known: Mapping[str, KeyPair],
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
        # Once every target holds the chosen pair, the keys being replaced, whose secret is lost,
        # are deleted: the in-flight key, and with a rewrite of every target, any key but the chosen
        # one whose secret is not known (the key a stopped rollback was moving away from).
        for key in facts.keys:
            lost = key.id != choice and key.id not in known
            if lost and (key.id == inflight or marker.everywhere):
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


_KNOWN_PAIR_HINT = (
    "Re-run this rotation from a step of one of these repositories with its own pair passed as "
    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (the run then rewrites every target with it), or keep "
    "a store (leave STORE unset) so a rotation can always resume."
)


def _mixed(
    facts: Facts,
    keys: Mapping[str, AccessKey],
    named: Counter[str],
    known: Mapping[str, KeyPair],
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
            plan.retire.append(("delete", new, "its secret is lost; every target is put back on " + old))
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
    known: Mapping[str, KeyPair],
    marker: Marker | None,
) -> Plan:
    now = facts.now
    current = next(iter(named), None)
    if current is None and facts.store and facts.store.current:
        current = facts.store.current.access_key_id
    plan = Plan("clean", current)

    # Keys of ours that were created and never published: resumed when the secret is known,
    # else deleted (nobody can be using them).
    pending = facts.store.pending.access_key_id if facts.store and facts.store.pending else ""
    for key in facts.keys:
        if key.id in named or key.id == current:
            continue
        ours = key.id == pending or (
            marker is not None
            and (key.id == marker.key or (not marker.key and key.created >= marker.started - MAKE_ROOM_SLACK))
        )
        if not ours:
            continue
        if key.id in known:
            resumed = Plan("resume", key.id, resume=known[key.id], prove=True)
            resumed.reasons.append(f"a rotation stopped before it published {key.id}")
            return resumed
        plan.delete_first.append(
            (key.id, "created by a rotation that stopped before publishing it; its secret is lost")
        )

    current_key = keys.get(current) if current else None
    if policy.force:
        plan.reasons.append("FORCE_ROTATE=true")
    if current is None:
        plan.reasons.append("no target holds a key yet")
    elif current_key is None:
        plan.reasons.append(f"the targets hold {current}, which is not a key of {facts.user} (deleted?)")
    elif current_key.status != "Active":
        plan.reasons.append(f"the targets hold {current}, which is inactive")
    elif current_key.age_days(now) >= policy.rotate_after:
        plan.reasons.append(
            f"{current} is {current_key.age_days(now):.0f} days old (ROTATE_AFTER_DAYS={policy.rotate_after})"
        )
    plan.rotate = bool(plan.reasons)
    if plan.rotate:
        plan.state = "due"
    else:
        _fill_empty(plan, facts, known)
    return plan


def _fill_empty(plan: Plan, facts: Facts, known: Mapping[str, KeyPair]) -> None:
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
            plan.retire.append(
                (
                    "delete",
                    key.id,
                    f"inactive and {age:.0f} days old (DELETE_AFTER_DAYS={policy.delete_after})",
                )
            )


def _holders(facts: Facts, key: str) -> str:
    names = [target for target, held in facts.held.items() if held == key]
    return ", ".join(names) if names else "no target"


def _date(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


# -- acting -------------------------------------------------------------------------------
@dataclass
class Report:
    user: str
    state: str
    dry_run: bool
    previous: str | None = None
    current: str | None = None
    store: str | None = None
    actions: list[str] = field(default_factory=list)
    targets: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def write(self, directory: Path) -> Path:
        from pipe import files

        path = directory / "rotation.json"
        document = {
            "user": self.user,
            "state": self.state,
            "dry_run": self.dry_run,
            "previous_key": self.previous,
            "current_key": self.current,
            "store": self.store,
            "actions": self.actions,
            "targets": self.targets,
            "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return files.write_file(
            path, json.dumps(document, indent=2) + "\n", variable="REPORT_DIR", private=False
        )


class Lease:
    """The pending marker as a lease: written when the run starts changing things, refreshed by
    a background thread every third of ROTATION_LEASE_SECONDS while the run works, cleared (or
    handed over, on failure) at the end. Every write goes through one lock, and the thread stops
    before the run clears or hands the marker over, so it never writes after that. A marker
    found with another run's id and a key means another run took over: the thread stops
    writing, and the run stops at its next step. One without a key is a run that lost the race
    to create a key (IAM's two-key limit decides it): it is written over."""

    def __init__(self, rotation: Rotation, user: str) -> None:
        self.rotation = rotation
        self.user = user
        self.run = secrets.token_hex(8)
        self.marker: Marker | None = None
        self.lost = False
        self.beats = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        return max(1.0, self.rotation.settings.lease_seconds / 3)

    def acquire(self, key: str = "", phase: str = "create", everywhere: bool = False) -> None:
        now = self.rotation.clock()
        with self._lock:
            self.marker = Marker(now, now, key, phase, everywhere, self.run)
            self.rotation.write_marker(self.user, self.marker)
        self._thread = threading.Thread(target=self._beat, name="rotation-heartbeat", daemon=True)
        self._thread.start()

    def update(self, **changes: Any) -> None:
        """Record a step (the key, the phase) in the marker, with a fresh heartbeat."""
        self.check()
        with self._lock:
            assert self.marker is not None
            self.marker = replace(self.marker, beat=self.rotation.clock(), **changes)
            self.rotation.write_marker(self.user, self.marker)

    def check(self) -> None:
        if self.lost:
            raise StateError(
                f"Another run took over the rotation of {self.user} (this run's marker was replaced); "
                "this run stopped",
                "Nothing to do: the other run finishes the rotation. If runs overlap often, raise "
                "ROTATION_LEASE_SECONDS.",
            )

    def holder(self) -> str:
        """The run id on the marker now ("" when there is none)."""
        marker = self.rotation.marker(self.user)
        return marker.run if marker else ""

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                if self._stop.is_set() or self.marker is None:
                    return
                try:
                    found = self.rotation.marker(self.user)
                    if found is not None and found.run != self.run and found.key:
                        # Another run took over (it names a key: this run's, resumed, or its own).
                        self.lost = True
                        return
                    self.marker = replace(self.marker, beat=self.rotation.clock())
                    self.rotation.write_marker(self.user, self.marker)
                    self.beats += 1
                except Exception:  # noqa: S112 - a missed beat is retried; the lease allows two
                    continue

    def locked(self, action: Callable[[], None]) -> None:
        """Run ``action`` while no heartbeat can be written (switching the run's clients)."""
        with self._lock:
            action()

    def stop(self) -> None:
        """No write after this returns."""
        with self._lock:
            self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def finish(self) -> None:
        """The run is done: stop beating, clear the marker if it is still this run's."""
        self.stop()
        if self.holder() == self.run:
            self.rotation.write_marker(self.user, None)

    def release(self) -> None:
        """The run is failing: hand the marker over at once (a zero heartbeat), so the next run
        resumes or cleans up without waiting for the lease. Best effort."""
        self.stop()
        try:
            if self.marker is not None and not self.lost and self.holder() == self.run:
                self.rotation.write_marker(self.user, replace(self.marker, beat=0.0))
        except Exception:  # noqa: S110 - the original failure is what the user must see
            pass

    def abandon(self) -> None:
        """Another run got there first: stop, and take this run's marker off if it is on."""
        self.stop()
        try:
            if self.holder() == self.run:
                self.rotation.write_marker(self.user, None)
        except Exception:  # noqa: S110 - nothing of this run's is left to protect
            pass


class Rotation:
    """Carries out a plan with the clients given; every change is reported as it happens."""

    def __init__(
        self,
        *,
        iam: Any,
        verify: Callable[[KeyPair], Any],
        targets: Sequence[Target],
        store: Any | None,
        settings: RotationSettings,
        say: Callable[[str], None],
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.iam = iam
        self.verify = verify
        self.targets = list(targets)
        self.store = store
        self.settings = settings
        self.say = say
        self.clock = clock
        self.sleep = sleep

    # reading
    def facts(self, user: str, own: KeyPair | None) -> Facts:
        listed = self.iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        keys = []
        for meta in listed:
            used = self.iam.get_access_key_last_used(AccessKeyId=meta["AccessKeyId"]).get(
                "AccessKeyLastUsed", {}
            )
            last = used.get("LastUsedDate")
            keys.append(
                AccessKey(
                    meta["AccessKeyId"],
                    meta["Status"],
                    meta["CreateDate"].timestamp(),
                    last.timestamp() if last else None,
                )
            )
        marker = self.marker(user)
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            # The store is read beside the targets: its client's first call loads the service's
            # model, which takes long enough to matter.
            store_state = pool.submit(self.store.state) if self.store is not None else None
            held = dict(
                zip(
                    [t.spec.text for t in self.targets],
                    pool.map(lambda t: t.read(), self.targets),
                    strict=True,
                )
            )
            stored = store_state.result() if store_state is not None else None
        return Facts(self.clock(), user, tuple(keys), held, stored, marker, own)

    def policy(self) -> Policy:
        s = self.settings
        return Policy(
            s.rotate_after,
            s.deactivate_after,
            s.delete_after,
            s.force,
            float(s.lease_seconds),
            float(s.grace_days),
            s.keep_old_key,
        )

    def marker(self, user: str) -> Marker | None:
        tags = {t["Key"]: t["Value"] for t in self.iam.list_user_tags(UserName=user).get("Tags", [])}
        return Marker.parse(tags.get(MARKER_TAG))

    # acting
    def write_marker(self, user: str, marker: Marker | None) -> None:
        if marker is None:
            self.iam.untag_user(UserName=user, TagKeys=[MARKER_TAG])
        else:
            self.iam.tag_user(UserName=user, Tags=[{"Key": MARKER_TAG, "Value": marker.tag()}])

    def clear_dead_marker(self, user: str, dead: Marker) -> bool:
        """Clear a dead run's marker, unless another run has replaced it meanwhile."""
        if self.marker(user) != dead:
            return False
        self.write_marker(user, None)
        return True

    def probe(self) -> None:
        """Prove every target and the store can be written, changing nothing (a write of what
        is there, or a permission probe), before any key is created. A target that cannot be
        written stops the run here, with nothing changed."""
        places: list[Target] = list(self.targets)
        if self.store is not None and all(t is not self.store for t in places):
            places.append(self.store)
        failures: list[str] = []

        def one(target: Target) -> str:
            try:
                target.probe()
            except PipeError as exc:
                return exc.line()
            except Exception as exc:
                code, message = aws_error(exc)
                if not code:
                    raise
                return f"AWS refused the write ({code}: {message})"
            return ""

        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            for target, error in zip(places, pool.map(one, places), strict=True):
                if error:
                    what = "the store " if target is self.store else ""
                    failures.append(f"{what}{target.spec.text}: {error}")
        if failures:
            raise StateError(
                f"{len(failures)} of {len(places)} places cannot be written, so no key was created and nothing "
                "changed: " + " | ".join(failures),
                "Fix what is named above (the token's scope, the target's name, a permission on the store), "
                "then re-run.",
            )
        self.say(f"Every target{' and the store' if self.store is not None else ''} can be written.")

    def delete_key(self, user: str, key: str) -> None:
        try:
            self.iam.delete_access_key(UserName=user, AccessKeyId=key)
        except Exception as exc:
            if aws_error(exc)[0] != "NoSuchEntity":
                raise

    def create(self, user: str, lease: Lease, report: Report) -> KeyPair | None:
        """Create the key under the lease; None when another run got there first."""
        try:
            answer = self.iam.create_access_key(UserName=user)["AccessKey"]
        except Exception as exc:
            if aws_error(exc)[0] == "LimitExceeded":
                return None
            raise
        pair = KeyPair(answer["AccessKeyId"], answer["SecretAccessKey"])
        lease.update(key=pair.access_key_id)
        found = self.marker(user)
        if found is not None and found.key and found.key != pair.access_key_id:
            self.delete_key(user, pair.access_key_id)  # two runs created a key: the marker's key wins
            return None
        if found is None or found.run != lease.run:
            lease.update()  # a run that lost the race (LimitExceeded) wrote last: this run's marker again
        report.actions.append(f"created {pair.access_key_id}")
        self.say(f"Created {pair.access_key_id} for {user}.")
        return pair

    def prove(
        self,
        user: str,
        pair: KeyPair,
        report: Report,
        *,
        ours: bool = True,
        on_success: Callable[[], None] | None = None,
    ) -> None:
        """GetCallerIdentity with the key must pass 3 times in a row within the timeout. A new key
        (``ours``) that never does is deleted; a resumed one is left alone and nothing is published."""
        deadline = self.clock() + self.settings.verify_timeout
        streak, delay = 0, 0.5
        while streak < 3:
            try:
                self.verify(pair)
                streak += 1
                if on_success is not None:
                    on_success()
                    on_success = None
                continue
            except Exception:  # any failure of the key restarts the streak
                streak = 0
            if self.clock() + delay > deadline:
                if not ours:
                    raise StateError(
                        f"The stored key {pair.access_key_id} did not pass GetCallerIdentity 3 times in a row "
                        f"within {self.settings.verify_timeout}s; nothing was published",
                        "Check that the key is active and that the store holds its secret; raise "
                        "VERIFY_TIMEOUT_SECONDS if IAM is slow, then re-run.",
                    )
                self.delete_key(user, pair.access_key_id)
                report.actions.append(
                    f"deleted {pair.access_key_id}: it did not work within VERIFY_TIMEOUT_SECONDS"
                )
                raise StateError(
                    f"The new key {pair.access_key_id} did not pass GetCallerIdentity 3 times in a row within "
                    f"{self.settings.verify_timeout}s; it was deleted and nothing was published",
                    "Raise VERIFY_TIMEOUT_SECONDS (IAM can take a while to accept a new key) and re-run.",
                )
            self.sleep(delay)
            delay = min(delay * 2, 5.0)
        self.say(f"{pair.access_key_id} works (GetCallerIdentity passed 3 times in a row).")

    def publish(
        self,
        pair: KeyPair,
        held: Mapping[str, str | None],
        report: Report,
        *,
        everywhere: bool = False,
        lease: Lease | None = None,
    ) -> None:
        """Write ``pair`` to every target that does not hold it (every target with
        ``everywhere``), both variables. After a failure no further target is started."""
        todo = [
            t
            for t in self.targets
            if t is not self.store and (everywhere or held.get(t.spec.text) != pair.access_key_id)
        ]
        failures: list[str] = []
        stop = threading.Event()

        def one(target: Target) -> tuple[Target, str | None, str]:
            if stop.is_set() or (lease is not None and lease.lost):
                return target, None, "skipped"
            try:
                return target, target.publish(pair), ""
            except PipeError as exc:
                stop.set()
                return target, None, exc.line()
            except Exception as exc:
                code, message = aws_error(exc)
                if not code:
                    raise
                stop.set()
                return target, None, f"AWS refused the write ({code}: {message})"

        skipped = 0
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            for target, readback, error in pool.map(one, todo):
                name = target.spec.text
                if error == "skipped":
                    skipped += 1
                    continue
                if error:
                    failures.append(f"{name}: {error}")
                    continue
                if readback not in (None, pair.access_key_id):
                    failures.append(f"{name}: read back {readback}, expected {pair.access_key_id}")
                    continue
                report.targets.setdefault(name, {})["after"] = pair.access_key_id
                self.say(f"Published {pair.access_key_id} to {name}" + (" (read back)" if readback else ""))
        if lease is not None:
            lease.check()
        if failures:
            rest = f" ({skipped} more not started)" if skipped else ""
            if self.store is not None:
                hint = (
                    "Fix the cause and re-run: the rotation resumes where it stopped (the key is in the store "
                    f"{self.store.spec.text})."
                )
            else:
                hint = (
                    "Fix the cause and re-run. With STORE=none the key's secret is not kept: the re-run writes a "
                    "new key to every target, or, when some targets already hold this one, asks for a known pair."
                )
            raise StateError(
                f"{len(failures)} of {len(todo)} targets did not take {pair.access_key_id}{rest}: "
                + " | ".join(failures),
                hint,
            )

    def retire(self, user: str, plan: Plan, report: Report) -> None:
        for action, key, why in plan.retire:
            if action == "deactivate":
                self.iam.update_access_key(UserName=user, AccessKeyId=key, Status="Inactive")
            else:
                self.delete_key(user, key)
            report.actions.append(f"{action}d {key}: {why}")
            self.say(f"{action.capitalize()}d {key}: {why}.")
