"""ACTION=rotate and ACTION=sync. Decide, then act.

1. Gather facts (read only): the user's keys with status, age and last use; the key id each
   target holds; what the store holds (pending / current); the pending marker on the user.
2. Plan (pure): derive the state and the steps, print them. DRY_RUN stops here.
3. Act, in an order that keeps every target on a working key: make room, mark pending and
   create, store as pending, prove the key works, publish, promote, clear the marker, retire
   old keys by the age policy (never the key this run replaced).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipe.config import KeyPair, RotationSettings
from pipe.errors import PipeError
from pipe.targets import StoreState, Target

MARKER_TAG = "aws-credentials-pipe/rotation"
DAY = 86400.0
LEASE_SECONDS = 300.0  # a marker whose heartbeat is older belongs to a run that died
MAKE_ROOM_SLACK = 300.0


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
    started: float
    heartbeat: float
    key: str = ""

    def alive(self, now: float, lease: float) -> bool:
        return now - self.heartbeat < lease

    def tag(self) -> str:
        return json.dumps({"started": int(self.started), "heartbeat": int(self.heartbeat), "key": self.key})

    @staticmethod
    def parse(text: str | None) -> Marker | None:
        if not text:
            return None
        try:
            data = json.loads(text)
            return Marker(
                float(data["started"]),
                float(data.get("heartbeat", data["started"])),
                str(data.get("key", "")),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Facts:
    now: float
    user: str
    keys: tuple[AccessKey, ...]
    held: Mapping[str, str | None]  # target text -> key id it holds
    store: StoreState | None
    marker: Marker | None
    own: KeyPair | None = None  # the run's own credentials, when they are one of the user's keys


@dataclass(frozen=True)
class Policy:
    rotate_after: int
    deactivate_after: int
    delete_after: int
    force: bool = False
    lease: float = LEASE_SECONDS


@dataclass
class Plan:
    state: str  # clean | due | resume | rollback | busy | blocked
    current: str | None
    rotate: bool = False
    resume: KeyPair | None = None  # a known pair to (re)publish instead of a new key
    everywhere: bool = False  # rewrite every target, even those whose id already names the pair
    clear_marker: bool = False  # a dead run's marker on a finished rotation
    delete_first: list[tuple[str, str]] = field(default_factory=list)  # (key id, why)
    retire: list[tuple[str, str, str]] = field(default_factory=list)  # (deactivate|delete, key id, why)
    warnings: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    blocked: str = ""
    blocked_hint: str = ""

    def lines(self, held: Mapping[str, str | None]) -> list[str]:
        lines = [f"state: {self.state}" + (f"; current key {self.current}" if self.current else "")]
        lines += [f"  {target:<40} holds {key or '(nothing)'}" for target, key in held.items()]
        lines += [f"  - delete {key} first: {why}" for key, why in self.delete_first]
        if self.resume:
            which = "every target" if self.everywhere else "every target that does not hold it"
            lines.append(f"  - publish {self.resume.access_key_id} to {which}")
        if self.clear_marker:
            lines.append("  - clear the marker a stopped rotation left (every target holds its key)")
        if self.rotate:
            lines.append(
                f"  - create a new key ({'; '.join(self.reasons)}), store it as pending, prove it works, publish it, promote it"
            )
        lines += [f"  - {action} {key}: {why}" for action, key, why in self.retire]
        lines += [f"  ! {warning}" for warning in self.warnings]
        if not (
            self.rotate
            or self.resume
            or self.delete_first
            or self.retire
            or self.blocked
            or self.clear_marker
        ):
            lines.append("  - nothing to do")
        return lines


def make_plan(facts: Facts, policy: Policy) -> Plan:
    """Pure: what to do, from what was read."""
    now = facts.now
    keys = {k.id: k for k in facts.keys}
    held_ids = Counter(v for v in facts.held.values() if v)
    known: dict[str, KeyPair] = {}
    if facts.store:
        for pair in (facts.store.current, facts.store.pending):
            if pair:
                known[pair.access_key_id] = pair
    if facts.own and facts.own.access_key_id in keys:
        known.setdefault(facts.own.access_key_id, facts.own)
    marker = facts.marker

    if (
        marker
        and marker.alive(now, policy.lease)
        and (not marker.key or marker.key not in held_ids or len(held_ids) > 1)
    ):
        return Plan("busy", None, blocked="another rotation of this user is in progress")

    if len(held_ids) > 1:
        return _mixed(facts, keys, held_ids, known, marker)

    current = next(iter(held_ids), None)
    if current is None and facts.store and facts.store.current:
        current = facts.store.current.access_key_id
    plan = Plan("clean", current)
    # A run that died after its last target took the key: every id names it, so every secret does.
    plan.clear_marker = marker is not None and marker.key == current

    resumed = _unpublished(facts, plan, held_ids, known, marker)
    if resumed:
        return resumed

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

    gone = {key for key, _ in plan.delete_first}
    previous = [k for k in facts.keys if k.id not in held_ids and k.id != current and k.id not in gone]
    if plan.rotate:
        remaining = [k for k in facts.keys if k.id not in gone]
        if len(remaining) >= 2:
            spare = next((k for k in previous if k.status == "Inactive"), None)
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
                return plan
            plan.delete_first.append((spare.id, "inactive; makes room for the new key"))
            previous.remove(spare)

    _retire(plan, previous, current_key, policy, now)
    return plan


def _fill_empty(plan: Plan, facts: Facts, known: Mapping[str, KeyPair]) -> None:
    """Targets that hold nothing yet (new in TARGETS) get the current key, when its secret is known."""
    current = plan.current
    empty = [target for target, held in facts.held.items() if held is None]
    if not current or not empty:
        return
    if current in known:
        plan.resume = known[current]
        plan.reasons.append(f"{', '.join(empty)} hold nothing yet")
    else:
        plan.warnings.append(
            f"{', '.join(empty)} hold nothing and the secret of {current} is not known here: they get the next "
            "key (FORCE_ROTATE=true publishes a new key everywhere now)."
        )


def _unpublished(
    facts: Facts, plan: Plan, held_ids: Counter[str], known: Mapping[str, KeyPair], marker: Marker | None
) -> Plan | None:
    """A key of ours that was created and never published: resume it when its secret is known
    (the store has it), else mark it for deletion (nobody can be using it)."""
    if marker is None:
        return None
    for key in facts.keys:
        if key.id in held_ids or key.id == plan.current:
            continue
        ours = key.id == marker.key or (not marker.key and key.created >= marker.started - MAKE_ROOM_SLACK)
        if not ours:
            continue
        if key.id in known:
            reason = f"a rotation stopped before it published {key.id}"
            return Plan("resume", key.id, resume=known[key.id], reasons=[reason])
        plan.delete_first.append(
            (key.id, "created by a rotation that stopped before publishing it; its secret is lost")
        )
    return None


def _mixed(
    facts: Facts,
    keys: Mapping[str, AccessKey],
    held_ids: Counter[str],
    known: Mapping[str, KeyPair],
    marker: Marker | None,
) -> Plan:
    """Targets on more than one key: a rotation stopped while publishing."""
    ordered = sorted(
        held_ids,
        key=lambda k: (k != (marker.key if marker else ""), -keys[k].created if k in keys else 0),
    )
    new = ordered[0]
    if new in known and new in keys:
        return Plan("resume", new, resume=known[new], reasons=[f"targets hold {', '.join(held_ids)}"])
    old = next((k for k in ordered[1:] if k in known and k in keys), None)
    if old:
        # An id no longer proves its secret here: a target interrupted mid-write shows the old id
        # beside the new secret. Rolling back rewrites every target.
        plan = Plan("rollback", old, resume=known[old], everywhere=True)
        if new in keys:
            plan.retire.append(("delete", new, "its secret is lost; every target is put back on " + old))
        return plan
    where = "; ".join(f"{target} holds {key}" for target, key in facts.held.items())
    return Plan(
        "blocked",
        None,
        blocked=f"The targets hold different keys and no secret of them is known here: {where}. Both keys stay active, so every target still works",
        blocked_hint=(
            "Re-run this rotation from a step of one of these repositories with its own pair passed as "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (the run then finishes or rolls back the rotation), "
            "or add a secretsmanager: or ssm: target so a rotation can always resume."
        ),
    )


def _retire(
    plan: Plan, previous: list[AccessKey], current_key: AccessKey | None, policy: Policy, now: float
) -> None:
    """Retirement by age; previous keys are deactivated only if unused since the current key was
    created. The current key is never among them: the key a run replaces is retired by later runs."""
    reference = current_key.created if current_key and not plan.rotate else now
    for key in previous:
        age = key.age_days(now)
        if key.status == "Active" and age >= policy.deactivate_after:
            if key.last_used is not None and key.last_used > reference:
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
            "actions": self.actions,
            "targets": self.targets,
            "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return files.write_file(
            path, json.dumps(document, indent=2) + "\n", variable="REPORT_DIR", private=False
        )


class Rotation:
    """Carries out a plan with the IAM client given; every change is reported as it happens."""

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
            held = dict(
                zip(
                    [t.spec.text for t in self.targets],
                    pool.map(lambda t: t.read(), self.targets),
                    strict=True,
                )
            )
        store_state = self.store.state() if self.store else None
        return Facts(self.clock(), user, tuple(keys), held, store_state, marker, own)

    def policy(self) -> Policy:
        s = self.settings
        return Policy(s.rotate_after, s.deactivate_after, s.delete_after, s.force, float(s.lease_seconds))

    def marker(self, user: str) -> Marker | None:
        tags = {t["Key"]: t["Value"] for t in self.iam.list_user_tags(UserName=user).get("Tags", [])}
        return Marker.parse(tags.get(MARKER_TAG))

    # acting
    def _mark(self, user: str, marker: Marker | None) -> None:
        if marker is None:
            self.iam.untag_user(UserName=user, TagKeys=[MARKER_TAG])
        else:
            self.iam.tag_user(UserName=user, Tags=[{"Key": MARKER_TAG, "Value": marker.tag()}])

    def delete_key(self, user: str, key: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.iam.delete_access_key(UserName=user, AccessKeyId=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchEntity":
                raise

    def heartbeat(self, user: str, key: str) -> None:
        """Tell concurrent runs this rotation is alive (they stop instead of deleting its key)."""
        marker = self.marker(user)
        started = marker.started if marker else self.clock()
        self._mark(user, Marker(started, self.clock(), key))

    def clear_marker(self, user: str) -> None:
        self._mark(user, None)

    def release(self, user: str) -> None:
        """A run that fails hands its marker over at once: the next run resumes or cleans up
        without waiting for the lease. Best effort: the run is failing anyway."""
        try:
            marker = self.marker(user)
            if marker:
                self._mark(user, Marker(marker.started, 0.0, marker.key))
        except Exception:  # noqa: S110 - the original failure is what the user must see
            pass

    def create(self, user: str, report: Report) -> KeyPair | None:
        """Create the key under a pending marker; None when another run got there first."""
        from botocore.exceptions import ClientError

        started = self.clock()
        self._mark(user, Marker(started, started))
        try:
            answer = self.iam.create_access_key(UserName=user)["AccessKey"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "LimitExceeded":
                return None
            raise
        pair = KeyPair(answer["AccessKeyId"], answer["SecretAccessKey"])
        self._mark(user, Marker(started, self.clock(), pair.access_key_id))
        winner = self.marker(user)
        if winner and winner.key and winner.key != pair.access_key_id:
            self.delete_key(user, pair.access_key_id)  # two runs at once: the marker's key wins
            return None
        report.actions.append(f"created {pair.access_key_id}")
        self.say(f"Created {pair.access_key_id} for {user}.")
        return pair

    def prove(self, user: str, pair: KeyPair, report: Report) -> None:
        """GetCallerIdentity with the new key must pass 3 times in a row within the timeout."""
        deadline = self.clock() + self.settings.verify_timeout
        streak, delay = 0, 0.5
        while streak < 3:
            try:
                self.verify(pair)
                streak += 1
                continue
            except Exception:  # any failure of the new key restarts the streak
                streak = 0
            if self.clock() + delay > deadline:
                self.delete_key(user, pair.access_key_id)
                self._mark(user, None)
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
        self, pair: KeyPair, held: Mapping[str, str | None], report: Report, everywhere: bool = False
    ) -> None:
        todo = [
            t
            for t in self.targets
            if t is not self.store and (everywhere or held.get(t.spec.text) != pair.access_key_id)
        ]
        failures: list[str] = []

        def one(target: Target) -> tuple[Target, str | None, str]:
            try:
                return target, target.publish(pair), ""
            except PipeError as exc:
                return target, None, exc.line()

        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            for target, readback, error in pool.map(one, todo):
                name = target.spec.text
                if error:
                    failures.append(f"{name}: {error}")
                    continue
                if readback not in (None, pair.access_key_id):
                    failures.append(f"{name}: read back {readback}, expected {pair.access_key_id}")
                    continue
                report.targets.setdefault(name, {})["after"] = pair.access_key_id
                self.say(f"Published {pair.access_key_id} to {name}" + (" (read back)" if readback else ""))
        if failures:
            raise StateError(
                f"{len(failures)} of {len(todo)} targets did not take the new key: " + " | ".join(failures),
                "Fix the cause and re-run: the rotation resumes where it stopped"
                + (" (the new key is in the store)." if self.store else "."),
            )

    def retire(self, user: str, plan: Plan, report: Report) -> None:
        for action, key, why in plan.retire:
            if action == "deactivate":
                self.iam.update_access_key(UserName=user, AccessKeyId=key, Status="Inactive")
            else:
                self.delete_key(user, key)
            report.actions.append(f"{action}d {key}: {why}")
            self.say(f"{action.capitalize()}d {key}: {why}.")
