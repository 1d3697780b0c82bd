"""The crash harness's hand in the stand-ins: count every external call the pipe process
makes (AWS and Bitbucket alike) and, at call N, either answer it with an API error or let it
take effect and then kill the process (SIGKILL: no clean-up, no finally blocks), or (AWS only,
`lost500`) let it take effect and answer a 500, which the SDK's standard mode retries."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from dataclasses import dataclass, field


@dataclass
class Interrupter:
    at: int = 0  # 0: never
    mode: str = "kill"  # kill | error | lost500
    pid: int = 0
    active: bool = False
    count: int = 0
    fired: str = ""
    calls: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def arm(self, at: int, mode: str) -> None:
        with self._lock:
            self.at, self.mode, self.count, self.fired, self.pid = at, mode, 0, "", 0
            self.calls = []
            self.active = True

    def disarm(self) -> None:
        with self._lock:
            self.active = False

    def hit(self, label: str) -> str | None:
        """Called by a stand-in for each request; the mode when this is call N."""
        with self._lock:
            if not self.active:
                return None
            self.count += 1
            self.calls.append(label)
            if self.count == self.at:
                self.fired = label
                return self.mode
        return None

    def kill(self) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
