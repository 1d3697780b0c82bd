"""ACTION=rotate's executor: reads the facts, then carries a plan out, the whole act sequence in
an order that keeps every target on a working key, and returns one ``Outcome``:

prove every target and the store can be written; take the lease (the pending marker, refreshed
by a heartbeat while the run works); make room; create the key, store it as pending, prove it
works (GetCallerIdentity 3 times in a row); publish it (secret, then id); promote it in the
store; clear the marker; retire old keys by the age policy (never deactivating in a run that
publishes).

Every IAM change is made with the run's own credentials (the role's, with OIDC), never with the
key being rotated, except in the self-service case, where the only credentials are that key:
then every AWS call after the new key passed GetCallerIdentity 3 times in a row (IAM, the store, the
targets' AWS clients) is signed by the new key."""

# Over 300 lines: the whole act sequence in one place, by design (nothing drives it from outside);
# the lease, the fan-out to targets and the plan live apart.

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipe.audit import state as audit_state
from pipe.credentials import Credentials
from pipe.errors import StateError, aws_error, is_aws_code
from pipe.report import RotationReport
from pipe.rotation import marker as markers
from pipe.rotation import publish
from pipe.rotation.lease import Lease
from pipe.rotation.marker import Marker
from pipe.rotation.planner import AccessKey, Facts, Plan
from pipe.stores import StoreState
from pipe.target_factory import build, build_store

if TYPE_CHECKING:
    from pipe.aws import AwsClients, Clients
    from pipe.config.rotation import RotationSettings
    from pipe.console import Console
    from pipe.stores import Store
    from pipe.targets import Target

DONE = {"due": "rotated", "resume": "resumed", "rollback": "rolled back", "repair": "repaired"}


def verify(aws: AwsClients, pair: Credentials) -> Any:
    """GetCallerIdentity signed by ``pair``: raises when the key does not work (yet)."""
    return aws.client("sts", pair).get_caller_identity()


@dataclass
class Outcome:
    """What the run did: rotation.json's content, and the last line. ``error``: the run failed
    (the action raises it once the report is written)."""

    report: RotationReport
    line: str = ""  # the ✔ line when it names no report
    published: Credentials | None = None
    error: Exception | None = None

    def summary(self, path: Path) -> str:
        if self.line:
            return self.line
        if self.published is not None:
            return f"{self.report.user}: every target holds {self.published.access_key_id}. Report: {path}"
        return (
            f"{self.report.user}: nothing was due; every target holds {self.report.current}. Report: {path}"
        )


# LimitExceeded on CreateAccessKey: how many times at least (a second apart) the marker and the
# store are read for the other rotation that created a key first.
LIMIT_READS = 10


class _Preempted(Exception):
    """Another run created a key first."""


class _Refused(StateError):
    """IAM refused a new key (LimitExceeded) and no other rotation explains it."""


def _retried(answer: Any) -> bool:
    """botocore retried the call (an answer, or the ClientError it ended with): an earlier
    attempt may have acted though its answer was lost (a 500, a timeout)."""
    response = getattr(answer, "response", answer)
    return bool(isinstance(response, Mapping) and response.get("ResponseMetadata", {}).get("RetryAttempts"))


class Executor:
    """Reads the facts of one user's rotation, and carries out a plan for them."""

    def __init__(
        self,
        *,
        aws: AwsClients,
        credentials: Credentials,
        user: str,
        places: Sequence[Target],
        store: Store | None,
        settings: RotationSettings,
        console: Console,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.aws = aws
        self.iam = aws.client("iam", credentials)
        self.user = user
        self.targets = list(places)
        self.store = store
        self.settings = settings
        self.console = console
        self.say = console.info
        self.clock = clock
        self.sleep = sleep
        self.managed = True  # the user carries the managed tag (read with the facts)

    @classmethod
    def for_run(
        cls,
        settings: RotationSettings,
        user: str,
        clients: Clients,
        credentials: Credentials,
        console: Console,
    ) -> Executor:
        """The targets of TARGETS and the durable store (one of them, or a place of its own),
        every AWS call signed with the run's own credentials."""
        key = settings.store_kms_key_id
        stores = {
            s.text: build_store(s, clients.aws, credentials, key) for s in settings.targets if s.is_store
        }
        places = [stores.get(s.text) or build(s, settings, clients, credentials) for s in settings.targets]
        chosen = settings.store_for(user)
        store = None
        if chosen is not None:
            store = stores.get(chosen.text) or build_store(chosen, clients.aws, credentials, key)
        return cls(
            aws=clients.aws,
            credentials=credentials,
            user=user,
            places=places,
            store=store,
            settings=settings,
            console=console,
        )

    # -- reading --------------------------------------------------------------------------
    def facts(self, own: Credentials | None) -> Facts:
        listed = self.iam.list_access_keys(UserName=self.user)["AccessKeyMetadata"]
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
        tags = markers.tags(self.iam, self.user)
        marker = markers.Marker.parse(tags.get(markers.MARKER_TAG))
        self.managed = tags.get(markers.MANAGED_TAG) == markers.MANAGED_VALUE
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
        deactivated = audit_state.parse_dates(tags.get(audit_state.DEACTIVATED_TAG))
        return Facts(
            self.clock(), self.user, tuple(keys), held, stored, marker, own, deactivated, frozenset(tags)
        )

    def marker(self) -> Marker | None:
        return markers.read(self.iam, self.user)

    @property
    def lease_seconds(self) -> float:
        return float(self.settings.lease_seconds)

    # -- acting ---------------------------------------------------------------------------
    def execute(self, plan: Plan, facts: Facts, *, dry_run: bool) -> Outcome:
        """Carry ``plan`` out (nothing when it is busy or blocked, or with DRY_RUN)."""
        report = RotationReport(
            self.user,
            plan.state,
            dry_run,
            previous=plan.current,
            current=plan.current,
            store=self.store.spec.text if self.store is not None else None,
        )
        report.targets = {name: {"before": key} for name, key in facts.held.items()}
        if plan.state == "busy":
            return Outcome(
                report, f"Another rotation of {self.user} is in progress; this run changed nothing."
            )
        if plan.blocked:
            return Outcome(report, error=StateError(plan.blocked, plan.blocked_hint))
        if dry_run:
            return Outcome(report, f"DRY_RUN: the plan for {self.user} is above; nothing was changed.")
        try:
            return self._act(plan, facts, report)
        except Exception as exc:
            report.state = "failed"
            return Outcome(report, error=exc)

    def _act(self, plan: Plan, facts: Facts, report: RotationReport) -> Outcome:
        """The changes, in the protocol's order; last, once per user, the tag that tells
        ACTION=audit this user's key is rotate's."""
        if plan.writes:
            self.probe()
        pair = None
        if plan.writes or plan.delete_first:
            lease = Lease(self)
            try:
                pair = self._leased(plan, facts, report, lease)
            except _Preempted:
                lease.abandon()
                self._drop_claim(lease)
                return Outcome(report, self._preempted_line(plan))
            except _Refused as exc:
                lease.abandon()  # no key of this run's is in flight: nothing for a next run to finish
                self._drop_claim(lease)
                report.state = "failed"
                return Outcome(report, error=exc)
            except BaseException:
                lease.release()
                self._hand_over_claim(lease)
                raise
        elif plan.clear_marker and facts.marker is not None and self.clear_dead_marker(facts.marker):
            report.actions.append("cleared the marker of a stopped rotation")
        dead = facts.store.claim if facts.store is not None else None
        if plan.clear_claim and not plan.writes and dead and self.store and self.store.drop_claim(dead):
            report.actions.append(f"cleared the claim of a stopped rotation in {self.store.spec.text}")
        self.retire(plan, report, facts)
        if not self.managed:
            try:
                markers.mark_managed(self.iam, self.user)
                self.managed = True
                report.actions.append(f"tagged {self.user} {markers.MANAGED_TAG}={markers.MANAGED_VALUE}")
            except Exception as exc:  # best-effort: the rotation itself is done
                if not is_aws_code(exc, "LimitExceeded"):
                    raise
                report.actions.append(
                    f"not tagged {markers.MANAGED_TAG}={markers.MANAGED_VALUE}: {self.user} has 50 tags "
                    "(IAM's quota), so ACTION=audit does not know this user's key is rotate's"
                )
        report.state = DONE.get(plan.state, plan.state)
        return Outcome(report, published=pair)

    def _preempted_line(self, plan: Plan) -> str:
        first = f"Another rotation of {self.user} created a key first"
        if not plan.delete_first:
            return f"{first}; this run changed nothing."
        deleted = "; ".join(f"{key} ({why})" for key, why in plan.delete_first)
        return f"{first}; this run only deleted {deleted}."

    def _leased(self, plan: Plan, facts: Facts, report: RotationReport, lease: Lease) -> Credentials | None:
        """Under the lease: make room, get the pair (a new key, or the plan's), publish it."""
        resumed = plan.resume.access_key_id if plan.resume else ""
        lease.acquire(key=resumed, phase="publish" if resumed else "create", everywhere=plan.everywhere)
        if not lease.recorded:
            if self.store is None:
                raise StateError(
                    f"IAM refused the rotation's marker on {self.user} (LimitExceeded: 50 tags); with "
                    "STORE=none a run stopped after it created a key would leave that key known nowhere. "
                    "Nothing was changed",
                    f"Remove one tag of {self.user}, or keep a store (leave STORE unset), then re-run.",
                )
            report.actions.append(
                f"worked without the marker ({self.user} has 50 tags, IAM's quota): "
                + (
                    f"the run's claim, then its pending key, in {self.store.spec.text} record the rotation"
                    if plan.rotate
                    else f"the store {self.store.spec.text} records the rotation"
                )
            )
        for key, why in plan.delete_first:
            self.delete_key(key)
            report.actions.append(f"deleted {key}: {why}")
            self.say(f"Deleted {key}: {why}.")
        pair = plan.resume
        if plan.rotate:
            if not lease.recorded:
                self._claim(lease)
            before = {k.id for k in facts.keys}
            pair = self._new_key(lease, report, self_service=facts.self_service, before=before)
        elif pair is not None and plan.prove:
            self.console.secrets(pair.secret_access_key)
            self.prove(pair, report, ours=False)
        if pair is not None:
            self._publish(pair, facts.held, report, everywhere=plan.everywhere, lease=lease)
        lease.finish()
        return pair

    def _new_key(
        self, lease: Lease, report: RotationReport, *, self_service: bool, before: set[str]
    ) -> Credentials:
        """Create, store as pending, prove. _Preempted when another run created a key first. A
        key that cannot be stored is deleted again: nothing was published."""
        pair = self.create(lease, report, before)
        if pair is None:
            raise _Preempted
        self.console.secrets(pair.secret_access_key)
        store = self.store
        if store is not None:
            try:
                store.write_pending(pair)
            except Exception:
                self.delete_key(pair.access_key_id)
                report.actions.append(
                    f"deleted {pair.access_key_id}: it could not be stored, nothing was published"
                )
                raise
            report.actions.append(f"stored {pair.access_key_id} as pending in {store.spec.text}")
            self.say(f"Stored {pair.access_key_id} as pending in {store.spec.text}.")
        switch = (lambda: lease.locked(lambda: self._sign_with(pair))) if self_service else None
        self.prove(pair, report, on_success=switch)
        return pair

    def _sign_with(self, pair: Credentials) -> None:
        """Self-service: once the new key passed GetCallerIdentity 3 times in a row, every AWS
        client of the run (IAM, the store's, the targets') signs with the new key."""
        self.iam = self.aws.client("iam", pair)
        for place in [*self.targets, *([self.store] if self.store is not None else [])]:
            place.sign_with(pair)

    def _publish(
        self,
        pair: Credentials,
        held: Mapping[str, str | None],
        report: RotationReport,
        *,
        everywhere: bool,
        lease: Lease,
    ) -> None:
        """Publish to the targets, then promote in the store; the marker says phase=publish."""
        self.console.secrets(pair.secret_access_key)
        lease.update(key=pair.access_key_id, phase="publish")
        publish.publish(
            self.targets,
            pair,
            held,
            report,
            concurrency=self.settings.concurrency,
            say=self.say,
            everywhere=everywhere,
            lease=lease,
            store=self.store,
        )
        if self.store is not None:
            lease.check()
            self.store.publish(pair)
            report.targets.setdefault(self.store.spec.text, {})["after"] = pair.access_key_id
            report.actions.append(f"promoted {pair.access_key_id} to current in {self.store.spec.text}")
        report.current = pair.access_key_id

    # -- the claim: the marker's stand-in in the store, for a user at the 50-tag quota -------------
    def _claim(self, lease: Lease) -> None:
        """Write the run's claim (the marker's text, naming no key) to the store's pending slot,
        before CreateAccessKey: a run stopped before the pending key is stored leaves it, and the
        next run takes a key created within this run's lifetime and held nowhere for this run's
        (pipe.rotation.planner's _ours). Replaced by the pending key; taken off or handed over
        (a zero heartbeat) when the run stops without one."""
        assert self.store is not None
        now = self.clock()
        lease.claim = Marker(now, now, run=lease.run)
        self.store.write_claim(lease.claim)

    def claim(self) -> Marker | None:
        """The claim in the store now (None: none, or a key in the pending slot)."""
        return self.store.state().claim if self.store is not None else None

    def _drop_claim(self, lease: Lease) -> None:
        """No key of this run's is in flight: take its claim off the store (if it is still there)."""
        if lease.claim is None or self.store is None:
            return
        with contextlib.suppress(Exception):  # best effort: a claim left dies with its lease
            self.store.drop_claim(lease.claim)

    def _hand_over_claim(self, lease: Lease) -> None:
        """The run is failing: hand its claim over at once (a zero heartbeat, as the marker's), so
        the next run cleans up without waiting for the lease. Best effort."""
        if lease.claim is None or self.store is None:
            return
        try:
            found = self.claim()
            if found is not None and found.run == lease.claim.run:
                self.store.write_claim(replace(lease.claim, beat=0.0))
        except Exception:  # noqa: S110 - the original failure is what the user must see
            pass

    def write_marker(self, marker: Marker | None) -> None:
        markers.write(self.iam, self.user, marker)

    def clear_dead_marker(self, dead: Marker) -> bool:
        """Clear a dead run's marker, unless another run has replaced it meanwhile."""
        if self.marker() != dead:
            return False
        self.write_marker(None)
        return True

    def probe(self) -> None:
        """Prove every target and the store can be written, changing nothing."""
        places: list[Target] = list(self.targets)
        if self.store is not None and all(t is not self.store for t in places):
            places.append(self.store)
        publish.probe(places, concurrency=self.settings.concurrency, store=self.store)
        self.say(f"Every target{' and the store' if self.store is not None else ''} can be written.")

    def delete_key(self, key: str) -> None:
        try:
            self.iam.delete_access_key(UserName=self.user, AccessKeyId=key)
        except Exception as exc:
            if not is_aws_code(exc, "NoSuchEntity"):
                raise

    def create(self, lease: Lease, report: RotationReport, before: set[str]) -> Credentials | None:
        """Create the key under the lease; None when another run got there first."""
        try:
            created = self.iam.create_access_key(UserName=self.user)
        except Exception as exc:
            if not is_aws_code(exc, "LimitExceeded"):
                raise
            if not (_retried(exc) and self._delete_lost(lease, report, before, keep="")):
                self._limit_exceeded(lease, report, before)
                return None
            created = self.iam.create_access_key(UserName=self.user)
        answer = created["AccessKey"]
        pair = Credentials(answer["AccessKeyId"], answer["SecretAccessKey"])
        lease.update(key=pair.access_key_id)
        found = self.marker()
        if found is not None and found.key and found.key != pair.access_key_id:
            self.delete_key(pair.access_key_id)  # two runs created a key: the marker's key wins
            return None
        if found is None or found.run != lease.run:
            lease.update()  # a run that lost the race (LimitExceeded) wrote last: this run's marker again
        elif _retried(created):
            self._delete_lost(lease, report, before, keep=pair.access_key_id)
        report.actions.append(f"created {pair.access_key_id}")
        self.say(f"Created {pair.access_key_id} for {self.user}.")
        return pair

    def _delete_lost(self, lease: Lease, report: RotationReport, before: set[str], *, keep: str) -> bool:
        """Delete the keys this run's own CreateAccessKey made without the run hearing of them
        (botocore's standard mode retries a 500 or a timeout of this non-idempotent call: the
        first attempt made a key, the retry met LimitExceeded or made another; called only when
        the SDK says it retried). Such a key was created while this run held the marker (no other
        run wrote it since), is not ``keep``,
        and its secret is known nowhere (not in the store; no target can hold what nobody read):
        left active, it would block every later rotation and never age out. True when one was
        deleted."""
        unexpected = [
            m["AccessKeyId"]
            for m in self.iam.list_access_keys(UserName=self.user)["AccessKeyMetadata"]
            if m["AccessKeyId"] not in before and m["AccessKeyId"] != keep
        ]
        if not unexpected or not lease.ours(self.marker()):
            return False
        stored = self.store.state() if self.store is not None else StoreState()
        if not lease.recorded and (stored.claim is None or stored.claim.run != lease.run):
            return False  # without a marker, the store's claim says the run is still alone
        known = {pair.access_key_id for pair in (stored.current, stored.pending) if pair}
        lost = [key for key in unexpected if key not in known]
        for key in lost:
            self.delete_key(key)
            why = "created by this run's CreateAccessKey, whose answer was lost (the SDK retried it); its secret is known nowhere"
            report.actions.append(f"deleted {key}: {why}")
            self.say(f"Deleted {key}: {why}.")
        return bool(lost)

    def _limit_exceeded(self, lease: Lease, report: RotationReport, before: set[str]) -> None:
        """IAM refused a new key: the user has two. Returns when another rotation explains it:
        another run's marker is on the user or took this run's off (that run finished), or the
        store holds a key that was not there when this run read the keys. Else (this run's marker
        untouched for a heartbeat interval, a person created a key meanwhile, say) raises
        _Refused: the run must not end ✔. This run's marker may have replaced the other run's,
        which writes its own again at its next step or heartbeat: hence the wait."""
        unexpected: list[str] = []
        reads = max(LIMIT_READS, int(lease.interval) + 2)
        for attempt in range(reads):
            listed = self.iam.list_access_keys(UserName=self.user)["AccessKeyMetadata"]
            unexpected = [m["AccessKeyId"] for m in listed if m["AccessKeyId"] not in before]
            stored = self.store.state() if self.store is not None else StoreState()
            # Without a marker (the 50-tag quota), the run's claim in the store stands for it.
            found = self.marker() if lease.recorded else stored.claim
            if found is None or found.run != lease.run:
                return
            if any(pair and pair.access_key_id in unexpected for pair in (stored.current, stored.pending)):
                return
            if attempt + 1 < reads:
                self.sleep(1.0)
        deleted = [line for line in report.actions if line.startswith("deleted ")]
        done = f" This run {'; '.join(deleted)}." if deleted else " This run changed nothing."
        if unexpected:
            ids = ", ".join(unexpected)
            raise _Refused(
                f"IAM refused a new key for {self.user} (LimitExceeded): {ids} was created after this run "
                f"read the user's keys, and no other rotation is at work (no other run's marker, not in the store).{done}",
                f"If a person created {ids}, delete or deactivate the key of {self.user} that no target "
                "uses (or wait until the other rotation ends), then re-run.",
            )
        raise _Refused(
            f"IAM refused a new key for {self.user} (LimitExceeded), though no key was created since this "
            f"run read the user's keys.{done}",
            f"Check the access keys of {self.user} (two at most), then re-run.",
        )

    def prove(
        self,
        pair: Credentials,
        report: RotationReport,
        *,
        ours: bool = True,
        on_success: Callable[[], None] | None = None,
    ) -> None:
        """GetCallerIdentity with the key must pass 3 times in a row within the timeout; then
        ``on_success`` (the self-service switch: never on one success, which IAM's eventual
        consistency may follow with failures). A new key (``ours``) that never does is deleted,
        with the run's credentials still; a resumed one is left alone and nothing is published."""
        deadline = self.clock() + self.settings.verify_timeout
        streak, delay = 0, 0.5
        while streak < 3:
            try:
                verify(self.aws, pair)
                streak += 1
                continue
            except Exception:  # any failure of the key restarts the streak
                streak = 0
            if self.clock() + delay > deadline:
                raise self._not_working(pair, report, ours=ours)
            self.sleep(delay)
            delay = min(delay * 2, 5.0)
        self.say(f"{pair.access_key_id} works (GetCallerIdentity passed 3 times in a row).")
        if on_success is not None:
            on_success()

    def _not_working(self, pair: Credentials, report: RotationReport, *, ours: bool) -> StateError:
        timeout = self.settings.verify_timeout
        if not ours:
            return StateError(
                f"The stored key {pair.access_key_id} did not pass GetCallerIdentity 3 times in a row "
                f"within {timeout}s; nothing was published",
                "Check that the key is active and that the store holds its secret; raise "
                "VERIFY_TIMEOUT_SECONDS if IAM is slow, then re-run.",
            )
        try:
            self.delete_key(pair.access_key_id)
        except Exception as exc:
            return StateError(
                f"The new key {pair.access_key_id} did not pass GetCallerIdentity 3 times in a row within "
                f"{timeout}s, nothing was published, and deleting it failed ({aws_error(exc)[0] or type(exc).__name__})",
                f"Delete {pair.access_key_id} of {self.user} (no target holds it), raise "
                "VERIFY_TIMEOUT_SECONDS, then re-run.",
            )
        report.actions.append(f"deleted {pair.access_key_id}: it did not work within VERIFY_TIMEOUT_SECONDS")
        return StateError(
            f"The new key {pair.access_key_id} did not pass GetCallerIdentity 3 times in a row within "
            f"{timeout}s; it was deleted and nothing was published",
            "Raise VERIFY_TIMEOUT_SECONDS (IAM can take a while to accept a new key) and re-run.",
        )

    def retire(self, plan: Plan, report: RotationReport, facts: Facts) -> None:
        """Deactivate and delete by the plan. The day each key is deactivated (the recovery window
        counts from it) is recorded first, in the tag ACTION=audit uses, for keys that still
        exist: a record never lags its act (killed between the two, the key is active still, and
        its date is dropped by the next change). The record is best-effort: at the user's 50-tag
        quota the key is deactivated all the same, and its window counts from its own dates
        (pipe.rotation.planner's _in_recovery_window); the report says so."""
        today = datetime.fromtimestamp(self.clock(), UTC).date()
        inactive = {k.id for k in facts.keys if k.status == "Inactive"} - {
            key for key, _ in plan.delete_first
        }
        dates = {k: d for k, d in facts.deactivated.items() if k in inactive}
        written = dict(facts.deactivated)
        deactivating = [key for action, key, _ in plan.retire if action == "deactivate"]
        refused = False
        if deactivating:
            ahead = dates | dict.fromkeys(deactivating, today)
            refused = not self._record(ahead, written, report)
            written = written if refused else ahead
        for action, key, why in plan.retire:
            if action == "deactivate":
                self.iam.update_access_key(UserName=self.user, AccessKeyId=key, Status="Inactive")
                dates[key] = today
                inactive.add(key)
            else:
                self.delete_key(key)
                inactive.discard(key)
            report.actions.append(f"{action}d {key}: {why}")
            self.say(f"{action.capitalize()}d {key}: {why}.")
        # Only keys that exist and are inactive keep a date (a key reactivated since loses it).
        if not refused:
            self._record({k: d for k, d in dates.items() if k in inactive}, written, report)

    def _record(self, dates: Mapping[str, Any], written: Mapping[str, Any], report: RotationReport) -> bool:
        """Write the deactivation days (``written``: what the tag holds now). False when IAM
        refused the tag for the user's 50-tag quota (the report says so)."""
        if dict(dates) == dict(written):
            return True
        try:
            if dates:
                value = audit_state.render_dates(dict(dates))
                self.iam.tag_user(
                    UserName=self.user, Tags=[{"Key": audit_state.DEACTIVATED_TAG, "Value": value}]
                )
            else:
                self.iam.untag_user(UserName=self.user, TagKeys=[audit_state.DEACTIVATED_TAG])
        except Exception as exc:
            if not is_aws_code(exc, "LimitExceeded"):
                raise
            report.actions.append(
                f"did not record the day of deactivation ({self.user} has 50 tags, IAM's quota): the recovery "
                "window counts from the key's own dates (its last use, and no earlier than ROTATION_GRACE_DAYS "
                "after the current key's creation)"
            )
            return False
        return True
