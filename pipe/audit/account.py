"""One account's audit: enter it, read it (a fixed number of calls, then the keys of the users
that need an action), plan every selected user, and later carry the plans out.

An account that cannot be entered or read is not an exception: it is an account with status
`error` and its reason, and the other accounts go on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipe.audit import accounts, reader
from pipe.audit.executor import Entry, Executor
from pipe.audit.planner import Policy, User, no_room, plan, secret_name
from pipe.errors import PipeError, aws_error

if TYPE_CHECKING:
    from pipe.audit.notify import Mailer
    from pipe.aws import AwsClients
    from pipe.config.audit import AuditSettings
    from pipe.console import Console
    from pipe.credentials import Credentials

# Seconds before a session's Expiration (AWS's clock) that the run gets a new one: 5 minutes, plus
# the 5 minutes the runner's clock may be behind AWS's (SigV4 accepts that much).
RENEW_BEFORE = 600.0


@dataclass(frozen=True)
class Problem:
    message: str
    hint: str


@dataclass
class Hub:
    """What every account's audit shares: the pipe's own credentials and identity, the SDK, the
    settings, the mailer, the console.

    The pipe's own session (the hub's) ends, an hour after it began by default, and every member
    session is assumed with it: ``current()`` gets a new one with ``renew`` (the run's credential
    step again: the step's OIDC token, valid for the step's whole run) once it is within
    RENEW_BEFORE of its end, so a run longer than a session goes on. A key (no expiry) is never
    renewed."""

    aws: AwsClients
    credentials: Credentials
    own_account: str
    own_arn: str
    settings: AuditSettings
    region: str
    partition: str
    session_name: str
    mailer: Mailer | None
    console: Console
    clock: Callable[[], float] = time.time
    renew: Callable[[], Credentials] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _clients: dict[tuple[int, str], tuple[Credentials, Any]] = field(default_factory=dict)

    def current(self) -> Credentials:
        """The pipe's own credentials, renewed near their end."""
        with self._lock:
            ends = self.credentials.expiration
            if (
                self.renew is not None
                and ends is not None
                and ends.timestamp() - self.clock() <= RENEW_BEFORE
            ):
                self.console.info("The pipe's own session ends soon: renewing it.")
                self.credentials = self.renew()
            return self.credentials

    def client(self, service: str, aws: AwsClients | None = None) -> Any:
        """A client with the pipe's own credentials (made again once they were renewed)."""
        credentials = self.current()
        sdk = aws or self.aws
        with self._lock:
            made = self._clients.get((id(sdk), service))
            if made is None or made[0] is not credentials:
                made = (credentials, accounts.client(sdk, service, credentials))
                self._clients[(id(sdk), service)] = made
            return made[1]


@dataclass
class AccountAudit:
    hub: Hub
    account_id: str
    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    generated: float | None = None  # the credential report's GeneratedTime
    missing_users: set[str] = field(default_factory=set)
    missing_groups: set[str] = field(default_factory=set)
    policy: Policy | None = None
    skew: float = 0.0  # seconds IAM's clock is ahead of the runner's (reader.clock_skew)
    _credentials: Credentials | None = None

    @property
    def own(self) -> bool:
        return self.account_id == self.hub.own_account

    @property
    def ok(self) -> bool:
        return not self.problems and not any(e.errors for e in self.entries)

    # -- entering ---------------------------------------------------------------------------
    def _session(self) -> Credentials | None:
        """The account's credentials: the pipe's own, or a role session (renewed near its end)."""
        hub = self.hub
        if self.own:
            return hub.current()
        current = self._credentials
        expires = current.expiration.timestamp() if current and current.expiration else 0.0
        if current is not None and expires - hub.clock() > RENEW_BEFORE:
            return current
        arn = accounts.role_arn(hub.partition, self.account_id, hub.settings.role_name)
        sts = hub.client("sts")
        found, why, hint = accounts.assume(
            sts, arn=arn, session_name=hub.session_name, external_id=hub.settings.external_id, hub=hub.own_arn
        )
        if found is None:
            self.problems.append(Problem(f"account {self.account_id} could not be entered: {why}", hint))
            return None
        hub.console.secrets(*found.secrets())
        self._credentials = found
        return found

    def _client(self, service: str) -> Any:
        credentials = self._session()
        return None if credentials is None else accounts.client(self.hub.aws, service, credentials)

    # -- reading and planning ---------------------------------------------------------------
    def prepare(self) -> None:
        """Enter, read, plan. Every failure becomes a problem of this account."""
        try:
            iam = self._client("iam")
            if iam is None:
                return
            self._read(iam)
        except Exception as exc:
            self.problems.append(self._problem(exc))

    def _problem(self, exc: Exception) -> Problem:
        """A failure to read the account as a problem of its own (a bug is raised)."""
        from botocore.exceptions import BotoCoreError

        code, message = aws_error(exc)
        if isinstance(exc, PipeError):
            return Problem(f"account {self.account_id}: {exc.message}", exc.hint)
        if code:
            operation = getattr(exc, "operation_name", "a call")
            return Problem(
                f"account {self.account_id} could not be read: {operation} was refused ({code}: {message})",
                f"Grant the audit role this permission in account {self.account_id} (docs/audit.md#permissions).",
            )
        if isinstance(exc, BotoCoreError):  # no answer: connection refused, reset, timed out
            return Problem(
                f"account {self.account_id} could not be read: {exc}",
                "Re-run later; check AWS_ENDPOINT_URL* and the network if it persists.",
            )
        raise exc

    def _read(self, iam: Any) -> None:
        settings, hub = self.hub.settings, self.hub
        report = reader.credential_report(iam, clock=hub.clock)
        self.generated = report.generated
        people = reader.directory(iam)
        missing = {settings.exempt_group} - people.groups if settings.exempt_group else set()
        if missing:
            self.problems.append(
                Problem(
                    f"account {self.account_id} has no IAM group {settings.exempt_group} (EXEMPT_GROUP): "
                    "nothing in it was audited, so that nobody exempt is changed",
                    f"Create the group in account {self.account_id}, or fix EXEMPT_GROUP.",
                )
            )
            return
        self.missing_users = set(settings.users) - set(people.users)
        self.missing_groups = set(settings.groups) - people.groups
        wanted = set(settings.users)
        groups = set(settings.groups)
        policy = Policy(
            mode=settings.mode,
            rotate_after=settings.rotate_after,
            deactivate_after=settings.deactivate_after,
            delete_after=settings.delete_after,
            notify_before=settings.notify_before,
            now=hub.clock() + report.skew,  # IAM's clock: its dates are compared with it
            exempt_group=settings.exempt_group,
            email_tag=settings.email_tag,
            notify=settings.notify_from is not None,
            secret_prefix=settings.secret_prefix,
        )
        self.policy = policy
        self.skew = report.skew
        secrets = None
        for name in sorted(people.users):
            person = people.users[name]
            if (wanted or groups) and name not in wanted and not (groups & person.groups):
                continue
            user = User(name, person.arn, person.tags, person.groups, report.keys.get(name, ()))
            first = plan(user, policy)
            target = secret_name(settings.secret_prefix, name)
            found: reader.SecretState | None = None
            if first.status == "audited" and policy.mode == "enforce" and target and no_room(person.tags):
                # No room for the in-flight tag among the user's 50: a stopped run recorded its key
                # on the user's secret (one DescribeSecret for such a user, in enforce only).
                secrets = secrets or self._client("secretsmanager")
                found = reader.secret_state(secrets, target) if secrets else None
                if found is not None and found.in_flight is not None:
                    user = replace(user, secret_flight=found.in_flight)
                    first = plan(user, policy)
            if first.status == "audited" and first.needs_keys:
                keys = reader.listed_keys(iam, name, user.keys)
                if first.in_flight is not None and found is None and target:
                    secrets = secrets or self._client("secretsmanager")
                    found = reader.secret_state(secrets, target) if secrets else None
                user = replace(user, keys=keys, listed=True, secret_holds=found.holds if found else None)
                first = plan(user, policy)
            self.entries.append(Entry(user, first))

    # -- acting -----------------------------------------------------------------------------
    def act(self) -> None:
        """Carry out every user's plan (enforce, revoke); a user's failure is recorded, and the
        next user goes on."""
        if self.problems or self.policy is None:
            return
        if not any(e.plan.changes or e.plan.in_flight or e.plan.of("notify") for e in self.entries):
            return
        try:
            iam, secrets = self._client("iam"), self._client("secretsmanager")
        except Exception as exc:  # the role session could not be renewed
            self.problems.append(self._problem(exc))
            return
        if iam is None:
            return
        executor = Executor(
            account=self.account_id,
            iam=iam,
            secrets=secrets,
            region=self.hub.region,
            policy=self.policy,
            secret_prefix=self.hub.settings.secret_prefix,
            mailer=self.hub.mailer,
            console=self.hub.console,
            clock=lambda: self.hub.clock() + self.skew,
        )
        for entry in self.entries:
            executor.carry_out(entry)

    # -- describing -------------------------------------------------------------------------
    def heading(self) -> str:
        where = " (the pipe's own)" if self.own else ""
        if self.generated is None:
            return f"Account {self.account_id}{where}"
        age = max(0, int(self.hub.clock() - self.generated))
        when = datetime.fromtimestamp(self.generated, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"Account {self.account_id}{where}: credential report generated {when} "
            f"({age // 3600} h {age % 3600 // 60} min ago; IAM keeps one for up to 4 h)"
        )

    def errors(self) -> list[Problem]:
        out = list(self.problems)
        for entry in self.entries:
            out += [
                Problem(f"account {self.account_id}, user {entry.plan.user}: {why}", hint)
                for why, hint in entry.errors
            ]
        return out
