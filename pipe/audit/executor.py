"""Carries out one user's plan in one account, in the order that keeps every key accounted for:

1. one TagUser: the key about to be created (``phase=create``), the dates of the keys about to
   be deactivated;
2. delete (a stopped run's undelivered key; inactive keys past their window): room first;
3. create the key, tag it in flight (``phase=deliver key=...``), deliver it into the user's
   secret (the resource policy first). A key that cannot be delivered is deleted again;
4. deactivate;
5. e-mail the user (only once the secret holds the new key: nothing reports a key before);
6. one TagUser for what the user was told, and the in-flight tag taken off.

A run killed anywhere leaves the in-flight tag: the next run deletes the key the secret does not
hold and creates it again (pipe.audit.planner). A CreateAccessKey that failed may have made the key
all the same (its answer lost: a 500 or a timeout the SDK's standard mode retries, and the retry
hears LimitExceeded): that key is this run's own, and the run deletes it at once (a key made since
the run began that was not there when it listed the user's keys); only when it cannot does the tag
stay for the next run. A delivery that failed is checked against the secret: a key the secret holds
after all (a lost PutSecretValue answer) is kept, not deleted.

Acting never depends on a tag: IAM allows 50 tags per user, and for a user at that limit the state
tags are written best-effort (``LimitExceeded`` is said in the actions' reasons, not a failure),
the keys are created, deactivated and deleted all the same. All but the in-flight record: when IAM
has no room for it, it goes on the user's secret (pipe.audit.delivery.mark), which the pipe owns and
which always has room, before CreateAccessKey, and comes off it with the user tag's; a key whose
in-flight record could be written nowhere is not created (a key nobody could trace is never made).
Every action done is marked ``done``."""

# Over 300 lines: the order of one user's calls is the crash-safety argument; each step and its
# recovery sit together so that the order reads in one place.

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipe.audit import delivery, notify, reader, state
from pipe.audit.planner import TAG_LIMIT_NOTE, Action, Policy, User, UserPlan, secret_name
from pipe.credentials import Credentials
from pipe.errors import PipeError, aws_error, aws_status, is_aws_code

if TYPE_CHECKING:
    from pipe.console import Console

DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")
THROTTLED = ("Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded")
PERMISSIONS_HINT = (
    "Grant the audit role the permissions of docs/audit.md#permissions, then re-run: the next run "
    "finishes what this one started."
)
RERUN_HINT = "Re-run: AWS did not answer (or was busy); the next run finishes what this one started."
FIX_HINT = "Fix what AWS says, then re-run: the next run finishes what this one started."
ORPHAN_HINT = (
    "Re-run: the next run removes a key this run may have made (the user's aws-credentials-pipe/audit "
    "tag records the attempt) and creates the user's new key again."
)


def hint_for(exc: Exception, *, key_in_doubt: bool = False) -> str:
    """What to change, from the kind of error: refused permissions, a key AWS may have made, an
    error AWS may not give again (no answer, throttling, 5xx), or anything else AWS said."""
    if is_aws_code(exc, *DENIED):
        return PERMISSIONS_HINT
    if key_in_doubt:
        return ORPHAN_HINT
    code, _ = aws_error(exc)
    if not code or code in THROTTLED or aws_status(exc)[0] >= 500:
        return RERUN_HINT
    return FIX_HINT


@dataclass
class Entry:
    """One user of one account: the facts the plan came from, the plan, and what was done."""

    user: User
    plan: UserPlan
    secret_arn: str | None = None
    notified: bool = False
    errors: list[tuple[str, str]] = field(default_factory=list)  # (what failed, what to change)
    in_flight_left: bool = False  # a created key could be neither delivered nor deleted
    answer_lost: bool = False  # AWS made a key whose answer was lost (deleted again)
    unrecorded: bool = False  # a state tag could not be written: the user is at IAM's 50-tag limit
    flight_on_secret: bool = False  # this run's in-flight record is on the user's secret
    marked: str | None = None  # the ARN of the secret that holds it
    untold: bool = False  # a new key was delivered but the e-mail about it failed


@dataclass
class Executor:
    account: str
    iam: Any
    secrets: Any
    region: str
    policy: Policy
    secret_prefix: str
    mailer: notify.Mailer | None
    console: Console
    clock: Callable[[], float]

    def carry_out(self, entry: Entry) -> None:
        plan = entry.plan
        if not (plan.changes or plan.in_flight or plan.of("notify")):
            return
        started = int(self.clock())
        pair: Credentials | None = None
        try:
            traced = self._intent(entry, started)
            for action in plan.of("delete"):
                self._delete(plan.user, action)
            if plan.of("create") and traced:
                pair = self._create(entry, started)
            for action in plan.of("deactivate"):
                self._deactivate(plan.user, action)
        except Exception as exc:
            hint = RERUN_HINT if entry.answer_lost else hint_for(exc, key_in_doubt=entry.in_flight_left)
            entry.errors.append((self._why(exc), hint))
        self._tell(entry, pair)
        self._finish(entry, pair)

    # -- the steps --------------------------------------------------------------------------
    def _tag(self, user: str, tags: dict[str, str]) -> None:
        self.iam.tag_user(UserName=user, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

    def _record(self, entry: Entry, tags: dict[str, str], actions: dict[str, list[Action]]) -> set[str]:
        """Write state tags, best-effort: a user at IAM's 50-tag limit is acted on all the same.
        When all of them do not fit, each is tried alone, the in-flight tag first, then the
        deactivation dates, then the notices; ``actions[tag]`` of a tag that did not fit say so.
        The tags that did not fit."""
        try:
            self._tag(entry.plan.user, tags)
            return set()
        except Exception as exc:
            if not is_aws_code(exc, "LimitExceeded"):
                raise
        left = sorted(tags, key=state.TAGS.index) if len(tags) > 1 else []
        unwritten = set(tags) - set(left)
        for name in left:
            try:
                self._tag(entry.plan.user, {name: tags[name]})
            except Exception as exc:
                if not is_aws_code(exc, "LimitExceeded"):
                    raise
                unwritten.add(name)
        if not entry.unrecorded:
            self.console.warning(f"{self.account} {entry.plan.user}: {TAG_LIMIT_NOTE}; acting all the same.")
        entry.unrecorded = True
        for name in unwritten:
            for action in actions.get(name, []):
                if TAG_LIMIT_NOTE not in action.reason:
                    action.reason += f"; {TAG_LIMIT_NOTE}"
        return unwritten

    def _intent(self, entry: Entry, started: int) -> bool:
        """Record the key about to be created and the keys about to be deactivated; whether the
        key about to be created is traced (its in-flight record written, on the user or on the
        user's secret): only then is it created."""
        plan = entry.plan
        tags: dict[str, str] = {}
        flight = state.InFlight("create", started).tag()
        if plan.of("create"):
            tags[state.AUDIT_TAG] = flight
        going = [a.key for a in plan.of("deactivate") if a.key]
        if going:
            dates = dict(plan.deactivated) | {key: self.policy.today for key in going}
            tags[state.DEACTIVATED_TAG] = state.render_dates(dates)
        unwritten = (
            self._record(entry, tags, {state.DEACTIVATED_TAG: plan.of("deactivate")}) if tags else set()
        )
        if state.AUDIT_TAG not in unwritten:
            return True
        # No room among the user's tags: the record goes on the user's secret (which the pipe owns).
        created = plan.of("create")[0]
        try:
            self._mark(entry, flight)
        except Exception as exc:
            created.reason += (
                "; not created: its in-flight record could be written neither in a user tag (IAM's "
                "50-tag limit) nor on the user's secret"
            )
            hint = exc.hint if isinstance(exc, PipeError) else hint_for(exc)
            entry.errors.append((f"the new key was not created: {self._why(exc)}", hint))
            return False
        created.reason += f"; in flight recorded on the user's secret ({TAG_LIMIT_NOTE})"
        return True

    def _mark(self, entry: Entry, value: str) -> None:
        name = secret_name(self.secret_prefix, entry.plan.user)
        assert name is not None, "the planner creates no key it cannot deliver"
        if entry.marked is None:
            entry.marked = delivery.secret_arn(self.secrets, name, entry.plan.user)
        delivery.mark(self.secrets, entry.marked, value)
        entry.flight_on_secret = True

    def _delete(self, user: str, action: Action) -> None:
        assert action.key, "a key is deleted by its id"
        try:
            self.iam.delete_access_key(UserName=user, AccessKeyId=action.key)
        except Exception as exc:
            if not is_aws_code(exc, "NoSuchEntity"):
                raise
        action.done = True
        self.console.info(f"{self.account} {user}: deleted {action.key} ({action.reason}).")

    def _deactivate(self, user: str, action: Action) -> None:
        self.iam.update_access_key(UserName=user, AccessKeyId=action.key, Status="Inactive")
        action.done = True
        self.console.info(f"{self.account} {user}: deactivated {action.key} ({action.reason}).")

    def _create(self, entry: Entry, started: int) -> Credentials:
        plan = entry.plan
        created, delivered = plan.of("create")[0], plan.of("deliver")[0]
        name = secret_name(self.secret_prefix, plan.user)
        assert name is not None, "the planner creates no key it cannot deliver"
        try:
            answer = self.iam.create_access_key(UserName=plan.user)["AccessKey"]
        except Exception as exc:
            # No answer is not no key: AWS may have made it (a lost answer, then the SDK's retry
            # hears LimitExceeded). That key is this run's own: deleted now, or (phase=create
            # stays) by the next run. A refusal that answered the only attempt made no key: then
            # a key made meanwhile is someone else's (a person's, whose secret they hold), and
            # the in-flight record comes off.
            status, retries = aws_status(exc)
            entry.in_flight_left = not (400 <= status < 500 and retries == 0)
            if retries and not is_aws_code(exc, *DENIED):
                self._orphans(entry, started, created)
            if entry.in_flight_left:
                created.reason += (
                    "; CreateAccessKey failed: a key AWS made all the same is deleted by the next run"
                )
            raise
        pair = Credentials(answer["AccessKeyId"], answer["SecretAccessKey"])
        self.console.secrets(pair.secret_access_key)
        created.key, created.done = pair.access_key_id, True
        try:
            flight = state.InFlight("deliver", started, pair.access_key_id)
            if entry.flight_on_secret:
                self._mark(entry, flight.tag())
            else:
                self._record(entry, {state.AUDIT_TAG: flight.tag()}, {state.AUDIT_TAG: [created]})
            try:
                entry.secret_arn = delivery.deliver(self.secrets, name, plan.user, entry.user.arn, pair)
            except Exception:
                # The value may have gone in, its answer lost: then the secret holds the key.
                entry.secret_arn = self._held(name, pair.access_key_id)
                if entry.secret_arn is None:
                    raise
        except Exception:
            try:
                self.iam.delete_access_key(UserName=plan.user, AccessKeyId=pair.access_key_id)
            except Exception:
                entry.in_flight_left = True  # the tag stays: the next run deletes it
                created.reason += f"; {pair.access_key_id} could not be delivered (the next run deletes it)"
                raise
            created.done = False
            created.reason += f"; {pair.access_key_id} was created, then deleted: it could not be delivered"
            raise
        delivered.key, delivered.done = pair.access_key_id, True
        self.console.info(
            f"{self.account} {plan.user}: created {pair.access_key_id} and stored it in {name} "
            "(the resource policy first)."
        )
        return pair

    def _orphans(self, entry: Entry, started: int, created: Action) -> None:
        """After a CreateAccessKey that failed: delete the key it made all the same (one the run did
        not list, made since it began by IAM's clock); ``in_flight_left`` stays when in doubt
        (nothing found yet: IAM's reads may lag its writes; or the listing or deletion failed)."""
        user = entry.plan.user
        if not entry.user.listed:
            return
        known = {k.id for k in entry.user.keys}
        try:
            listed = self.iam.list_access_keys(UserName=user).get("AccessKeyMetadata", [])
            mine = [
                str(k["AccessKeyId"])
                for k in listed
                if k["AccessKeyId"] not in known
                and k["CreateDate"].timestamp() >= started - state.ORPHAN_BEFORE
            ]
            for key in mine:
                self.iam.delete_access_key(UserName=user, AccessKeyId=key)
        except Exception as exc:
            self.console.warning(
                f"{self.account} {user}: a key AWS may have made could not be looked for: {self._why(exc)}"
            )
            return
        if mine:
            entry.in_flight_left, entry.answer_lost = False, True
            created.reason += (
                f"; CreateAccessKey failed, but AWS had made {', '.join(mine)} (its answer was lost): "
                "deleted, nobody held it"
            )
            self.console.info(
                f"{self.account} {user}: deleted {', '.join(mine)}, made by this run but never answered."
            )

    def _held(self, name: str, key_id: str) -> str | None:
        """The secret's ARN when it holds ``key_id`` (a delivery whose last answer was lost)."""
        try:
            described = self.secrets.describe_secret(SecretId=name)
        except Exception:
            return None
        return str(described["ARN"]) if reader.current_key(described) == key_id else None

    def _tell(self, entry: Entry, pair: Credentials | None) -> None:
        """The user's e-mail: what was done, what comes next. Nothing when nothing was done."""
        plan = entry.plan
        letters = plan.of("notify")
        if not letters or self.mailer is None or plan.email is None:
            return
        news = self._news(entry, pair)
        if not (news.happened or plan.warnings or plan.announce):
            return
        try:
            self.mailer.send([plan.email], notify.user_letter(news))
        except Exception as exc:
            entry.errors.append(
                (f"the e-mail to {plan.email} was not sent: {self._why(exc)}", notify.SES_HINT)
            )
            # The in-flight tag stays (the secret holds the key): the next run tells the user.
            entry.untold = news.new_key is not None
            return
        letters[0].done = True
        entry.notified = True
        self.console.info(f"{self.account} {plan.user}: e-mailed {plan.email}.")

    def _news(self, entry: Entry, pair: Credentials | None) -> notify.News:
        plan, policy = entry.plan, self.policy
        new_key = pair.access_key_id if pair else (plan.announce or None)
        done = [a for a in plan.actions if a.done]
        gone = {a.key for a in done if a.action in ("deactivate", "delete")}
        # A key left Active for its replacement's first day: deactivated on the day the plan says.
        deferred = plan.deferred if new_key or not plan.of("create") else {}
        active = [
            (k.id or "", deferred.get(k.id or "") or policy.on(k.created, policy.deactivate_after))
            for k in entry.user.keys
            if k.active and k.id not in gone and k.id
        ]
        # A newer key audit delivered (and told the user about) is in the secret: say how to fetch it.
        newer = new_key is None and plan.notified.new in {key for key, _ in active}
        secret = secret_name(self.secret_prefix, plan.user) if (new_key or newer) else None
        deactivated = [a.key or "" for a in done if a.action == "deactivate"]
        return notify.News(
            account=self.account,
            user=plan.user,
            mode=policy.mode,
            today=policy.today,
            region=self.region,
            secret=secret,
            new_key=new_key,
            deactivated=[(a.key or "", a.reason) for a in done if a.action == "deactivate"],
            deleted=[(a.key or "", a.reason) for a in done if a.action == "delete"],
            next_steps=notify.next_steps(
                today=policy.today,
                active=active,
                deactivated=deactivated,
                window=policy.window,
                new_key=new_key,
            ),
        )

    def _finish(self, entry: Entry, pair: Credentials | None) -> None:
        """Record what the user was told, keep the deactivation dates of keys that still exist,
        take the in-flight tag off (unless a key is still in flight: a failed delete)."""
        plan = entry.plan
        deleted = {a.key for a in plan.of("delete") if a.done}
        deactivated = {a.key: self.policy.today for a in plan.of("deactivate") if a.done and a.key}
        dates = {k: d for k, d in (plan.deactivated | deactivated).items() if k not in deleted}
        keys = {k.id for k in entry.user.keys if k.id and k.id not in deleted}
        if pair is not None:
            keys.add(pair.access_key_id)
        tags: dict[str, str] = {}
        if entry.notified:
            new = pair.access_key_id if pair else plan.announce
            told = plan.notified.after(self.policy.today, [k for k in plan.warnings if k], new, keys)
            tags[state.NOTIFIED_TAG] = told.tag()
        if dates and dates != plan.deactivated:
            tags[state.DEACTIVATED_TAG] = state.render_dates(dates)
        untag = [state.DEACTIVATED_TAG] if plan.deactivated and not dates else []
        settled = (plan.in_flight or plan.of("create")) and not (entry.in_flight_left or entry.untold)
        # The record is taken off where it is: the user (where it was, or this run wrote it), the secret.
        on_user = state.AUDIT_TAG in entry.user.tags or bool(plan.of("create") and not entry.flight_on_secret)
        if settled and on_user:
            untag.append(state.AUDIT_TAG)
        unmark = settled and (plan.flight_on_secret or entry.flight_on_secret)
        name = secret_name(self.secret_prefix, plan.user)
        try:
            if tags:
                self._record(
                    entry,
                    tags,
                    {state.NOTIFIED_TAG: plan.of("notify"), state.DEACTIVATED_TAG: plan.of("deactivate")},
                )
            if untag:
                self.iam.untag_user(UserName=plan.user, TagKeys=untag)
            if unmark and name is not None:
                delivery.unmark(self.secrets, name)
        except Exception as exc:
            entry.errors.append((self._why(exc), hint_for(exc)))

    @staticmethod
    def _why(exc: Exception) -> str:
        code, message = aws_error(exc)
        operation = getattr(exc, "operation_name", "")
        if code:
            return f"{operation} refused ({code}: {message})"
        text = getattr(exc, "message", "") or type(exc).__name__
        return str(text)
