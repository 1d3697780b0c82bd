"""The pending marker: an IAM user tag that records what a rotation is doing, so the next run
can finish it whatever happened (``pipe.rotation.planner`` reads it; the executor's lease writes
it). Its value holds only what IAM allows in a tag value, never a secret."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MARKER_TAG = "aws-credentials-pipe/rotation"
# On the user whose key ACTION=rotate manages: ACTION=audit leaves such a user to rotate.
MANAGED_TAG = "aws-credentials-pipe/managed"
MANAGED_VALUE = "rotate"
PHASES = ("create", "publish")
_KEY_ID = re.compile(r"[A-Z0-9]{16,128}")
_NUMBER = re.compile(r"[0-9]{1,12}")
_RUN_ID = re.compile(r"[0-9a-f]{1,32}")


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


def read(iam: Any, user: str) -> Marker | None:
    """The marker on ``user`` (None: none, or a tag value that is no marker)."""
    return Marker.parse(tags(iam, user).get(MARKER_TAG))


def tags(iam: Any, user: str) -> dict[str, str]:
    """The user's tags (the marker and the managed tag among them)."""
    return {t["Key"]: t["Value"] for t in iam.list_user_tags(UserName=user).get("Tags", [])}


def mark_managed(iam: Any, user: str) -> None:
    """Tell ACTION=audit that rotate manages this user's key."""
    iam.tag_user(UserName=user, Tags=[{"Key": MANAGED_TAG, "Value": MANAGED_VALUE}])


def write(iam: Any, user: str, marker: Marker | None) -> None:
    """Put ``marker`` on ``user``; None takes it off."""
    if marker is None:
        iam.untag_user(UserName=user, TagKeys=[MARKER_TAG])
    else:
        iam.tag_user(UserName=user, Tags=[{"Key": MARKER_TAG, "Value": marker.tag()}])
