"""What audit remembers between runs, in IAM user tags whose values real IAM accepts (letters,
digits, spaces and ``_ . : / = + - @``; at most 256 characters; a unit test holds every value
against botocore's model for TagUser). Never a secret, never JSON.

- ``aws-credentials-pipe/audit``: a key in flight. ``phase=create started=<epoch>`` is written
  before CreateAccessKey; ``phase=deliver key=AKIA... started=<epoch>`` once the key exists; the
  tag is taken off once the user's secret holds the key and the user was told. A run that finds
  it knows a run stopped in between: the key (the named one, or else the first key created
  between ``ORPHAN_BEFORE`` seconds before ``started`` and ``ORPHAN_AFTER`` after it) that the
  secret does not hold is deleted, and created again.
- ``aws-credentials-pipe/deactivated``: ``AKIA...=2026-12-01 AKIA...=2026-11-20``, the dates
  audit deactivated keys: the recovery window before deletion counts from there.
- ``aws-credentials-pipe/notified``: ``date=2026-12-01 warn=AKIA...+AKIA... new=AKIA...``: the
  last e-mail's date, the keys whose deactivation the user was warned of (once per key), and the
  last new key the user was told about.
- ``aws-credentials-pipe/managed`` = ``rotate``: written by ACTION=rotate on the user whose key
  it manages; audit reports such a user ``managed`` and leaves it alone while its newest Active
  key is younger than DEACTIVATE_AFTER_DAYS (pipe.audit.planner: users may write these tags on
  themselves, so they are no exemption beyond that, and none from revoke).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from pipe.rotation.marker import MANAGED_TAG, MARKER_TAG

AUDIT_TAG = "aws-credentials-pipe/audit"
DEACTIVATED_TAG = "aws-credentials-pipe/deactivated"
NOTIFIED_TAG = "aws-credentials-pipe/notified"
TAGS = (AUDIT_TAG, DEACTIVATED_TAG, NOTIFIED_TAG)
MAX_VALUE = 256
# The first key created from this long before a stopped run's `started` to this long after is taken
# for its key: the run dies within seconds of CreateAccessKey (the SDK's retries included). Both are
# IAM's dates (`started` is the runner's clock set to IAM's, pipe.audit.reader.clock_skew), and the
# window before is SigV4's 5 minutes all the same, for a runner whose clock is that far off. A user's
# own key made in the window before the run's is not taken for it: the run read the user's keys
# (ListAccessKeys) seconds before `started`, and plans no new key for a user who has a newer one.
ORPHAN_BEFORE = 300.0
ORPHAN_AFTER = 600.0
_KEY_ID = re.compile(r"[A-Z0-9]{16,128}")
_NUMBER = re.compile(r"[0-9]{1,12}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def managed(tags: Mapping[str, str]) -> bool:
    """ACTION=rotate manages this user's key (its tag, or a rotation in progress)."""
    return tags.get(MANAGED_TAG) == "rotate" or MARKER_TAG in tags


def _fields(text: str | None) -> dict[str, str] | None:
    if not text or len(text) > MAX_VALUE:
        return None
    found: dict[str, str] = {}
    for part in text.split():
        name, sep, value = part.partition("=")
        if not sep or name in found:
            return None
        found[name] = value
    return found


@dataclass(frozen=True)
class InFlight:
    """A key between CreateAccessKey and its delivery."""

    phase: str  # create | deliver
    started: int
    key: str = ""

    def tag(self) -> str:
        return " ".join(
            [f"phase={self.phase}", *([f"key={self.key}"] if self.key else []), f"started={self.started}"]
        )

    def covers(self, key_id: str | None, created: float) -> bool:
        """Is this key the one in flight? By its id once known; else by when it was created."""
        if self.key:
            return key_id == self.key
        return self.started - ORPHAN_BEFORE <= created <= self.started + ORPHAN_AFTER

    @staticmethod
    def parse(text: str | None) -> InFlight | None:
        """None for no tag or a value that is not ours (never a reason to delete anything)."""
        found = _fields(text)
        if found is None:
            return None
        phase, started, key = found.get("phase", ""), found.get("started", ""), found.get("key", "")
        if phase not in ("create", "deliver") or not _NUMBER.fullmatch(started):
            return None
        if (key and not _KEY_ID.fullmatch(key)) or (phase == "deliver" and not key):
            return None
        return InFlight(phase, int(started), key)


def parse_dates(text: str | None) -> dict[str, date]:
    """``AKIA...=2026-12-01 ...``: key id -> the date audit deactivated it (unreadable parts are skipped)."""
    out: dict[str, date] = {}
    for part in (text or "").split():
        key, _, when = part.partition("=")
        if _KEY_ID.fullmatch(key) and _DATE.fullmatch(when):
            try:
                out[key] = date.fromisoformat(when)
            except ValueError:
                continue
    return out


def render_dates(dates: Mapping[str, date]) -> str:
    """The newest first, cut to what a tag value holds."""
    parts = [f"{k}={d.isoformat()}" for k, d in sorted(dates.items(), key=lambda kv: kv[1], reverse=True)]
    while len(" ".join(parts)) > MAX_VALUE:
        parts.pop()
    return " ".join(parts)


@dataclass(frozen=True)
class Notified:
    """What the user was last told."""

    day: str = ""  # ISO date of the last e-mail
    warned: frozenset[str] = field(default_factory=frozenset)
    new: str = ""  # the last new key the user was told about

    def tag(self) -> str:
        parts = [f"date={self.day}"] if self.day else []
        if self.warned:
            parts.append("warn=" + "+".join(sorted(self.warned)))
        if self.new:
            parts.append(f"new={self.new}")
        return " ".join(parts)[:MAX_VALUE]

    def after(self, day: date, warned: Iterable[str], new: str, keys: Iterable[str]) -> Notified:
        """The record after an e-mail on ``day``, keeping only keys that still exist."""
        alive = set(keys)
        return Notified(day.isoformat(), frozenset((self.warned | set(warned)) & alive), new or self.new)

    @staticmethod
    def parse(text: str | None) -> Notified:
        found = _fields(text) or {}
        day = found.get("date", "")
        warned = frozenset(k for k in found.get("warn", "").split("+") if _KEY_ID.fullmatch(k))
        new = found.get("new", "")
        return Notified(day if _DATE.fullmatch(day) else "", warned, new if _KEY_ID.fullmatch(new) else "")
