"""The one credentials type, and the routes by which a run gets its own.

``Credentials`` is a role's session (with a session token and an expiry) or a long-lived access
key (neither): the fallback key, a key being rotated, a key read from a store. A leaf: the
settings (``pipe.config``) and every module that handles a key import it; the credential step
every action begins with is ``pipe.signin``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any


class Route(Enum):
    """How the run gets its own credentials."""

    OIDC = "oidc"
    ACCESS_KEY = "access-key"


@dataclass(frozen=True)
class Credentials:
    """A set of AWS credentials: an access key, and a session's token and expiry when it has them."""

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
