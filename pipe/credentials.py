"""The one credentials type, and the credential step every action begins with.

``Credentials`` is a role's session (with a session token and an expiry) or a long-lived access
key (neither): the fallback key, a key being rotated, a key read from a store. ``obtain`` gets
the run's own credentials by the route the settings chose (the step's OIDC token, or the
fallback key) and proves whose they are before anything uses them."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from pipe import sts

if TYPE_CHECKING:
    from pipe.aws import Clients
    from pipe.config import Settings
    from pipe.console import Console


class Route(Enum):
    """How the run gets its own credentials."""

    OIDC = "oidc"
    ACCESS_KEY = "access-key"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiration: datetime | None = None

    def secrets(self) -> tuple[str, ...]:
        return tuple(v for v in (self.secret_access_key, self.session_token) if v)

    @classmethod
    def from_sts(cls, block: Mapping[str, Any]) -> Credentials:
        """The ``Credentials`` block of an STS answer."""
        return cls(block["AccessKeyId"], block["SecretAccessKey"], block["SessionToken"], block["Expiration"])


def obtain(
    settings: Settings, clients: Clients, console: Console, clock: Callable[[], float] = time.time
) -> tuple[Credentials, sts.Identity]:
    """Credentials by the route the settings chose, proven by GetCallerIdentity (the identity
    must be the assumed role, in an allowed account) before anything uses them."""
    expected: str | None = None
    if settings.route is Route.OIDC:
        assert settings.role and settings.claims and settings.token
        console.info(
            f"Assuming {settings.role.arn} with the step's OIDC token (sub {settings.claims.sub}), "
            f"session {settings.session_name}, {settings.duration_seconds}s, STS in {settings.region}."
        )
        block = sts.assume_role_with_web_identity(
            clients.aws.client("sts"),
            role=settings.role,
            session_name=settings.session_name,
            token=settings.token,
            claims=settings.claims,
            duration_seconds=settings.duration_seconds,
            session_policy=settings.session_policy,
            retry_timeout=settings.retry_timeout,
            now=clock(),
        )
        credentials = Credentials.from_sts(block)
        expected = sts.expected_arn(settings.role, settings.session_name)
    else:
        assert settings.access_key
        console.warning(settings.route_warning)
        credentials = settings.access_key
    console.secrets(*credentials.secrets())

    identity = sts.get_caller_identity(
        clients.aws.client("sts", credentials),
        retry_timeout=settings.retry_timeout,
        fallback_key=settings.route is Route.ACCESS_KEY,
    )
    sts.verify_identity(identity, expected=expected, allowed_accounts=settings.allowed_accounts)
    console.info(f"GetCallerIdentity confirms {identity.arn} (account {identity.account}).")
    return credentials, identity
