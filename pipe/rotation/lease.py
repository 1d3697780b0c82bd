"""The pending marker as a lease: a rotation that changes anything holds it, refreshes it by a
heartbeat, and clears it (or hands it over) at the end, so two runs never rotate one user at
once and a dead run's work is resumed by the next."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from pipe.errors import StateError, is_aws_code
from pipe.rotation.marker import Marker


class Holder(Protocol):
    """What the lease needs of the run that holds it (the executor): the user, the clock, the
    lease's length, and the marker read and written with the run's current IAM client."""

    user: str
    clock: Callable[[], float]

    @property
    def lease_seconds(self) -> float: ...

    def marker(self) -> Marker | None: ...

    def write_marker(self, marker: Marker | None) -> None: ...


class Lease:
    """The pending marker as a lease: written when the run starts changing things, refreshed by
    a background thread every third of ROTATION_LEASE_SECONDS while the run works, cleared (or
    handed over, on failure) at the end. Every write goes through one lock, and the thread stops
    before the run clears or hands the marker over, so it never writes after that. A marker
    found with another run's id and a key means another run took over: the thread stops
    writing, and the run stops at its next step. One without a key is a run that lost the race
    to create a key (IAM's two-key limit decides it): it is written over."""

    def __init__(self, rotation: Holder) -> None:
        self.rotation = rotation
        self.user = rotation.user
        self.run = secrets.token_hex(8)
        self.marker: Marker | None = None
        self.lost = False
        self.recorded = True  # False: IAM refused the marker (the user's 50-tag quota)
        self.claim: Marker | None = None  # then: the run's claim in the store (the executor writes it)
        self.beats = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        return max(1.0, self.rotation.lease_seconds / 3)

    def acquire(self, key: str = "", phase: str = "create", everywhere: bool = False) -> None:
        now = self.rotation.clock()
        with self._lock:
            self.marker = Marker(now, now, key, phase, everywhere, self.run)
            try:
                self.rotation.write_marker(self.marker)
            except Exception as exc:
                if not is_aws_code(exc, "LimitExceeded"):
                    raise
                # The user has 50 tags: the run goes on without a marker (pipe.rotation.planner's
                # _tag_quota says so in the plan); nothing is written, nothing beats.
                self.recorded = False
                return
        self._thread = threading.Thread(target=self._beat, name="rotation-heartbeat", daemon=True)
        self._thread.start()

    def update(self, **changes: Any) -> None:
        """Record a step (the key, the phase) in the marker, with a fresh heartbeat."""
        self.check()
        with self._lock:
            assert self.marker is not None
            self.marker = replace(self.marker, beat=self.rotation.clock(), **changes)
            if self.recorded:
                self.rotation.write_marker(self.marker)

    def check(self) -> None:
        if self.lost:
            raise StateError(
                f"Another run took over the rotation of {self.user} (this run's marker was replaced); "
                "this run stopped",
                "Nothing to do: the other run finishes the rotation. If runs overlap often, raise "
                "ROTATION_LEASE_SECONDS.",
            )

    def ours(self, found: Marker | None) -> bool:
        """``found`` (the marker read now) is this run's: no other run has written it since
        (without a marker of its own, a run can tell only that no other run's is there; its claim
        in the store tells the rest)."""
        if not self.recorded:
            return found is None
        return found is not None and found.run == self.run

    def holder(self) -> str:
        """The run id on the marker now ("" when there is none)."""
        marker = self.rotation.marker()
        return marker.run if marker else ""

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                if self._stop.is_set() or self.marker is None:
                    return
                try:
                    found = self.rotation.marker()
                    if found is not None and found.run != self.run and found.key:
                        # Another run took over (it names a key: this run's, resumed, or its own).
                        self.lost = True
                        return
                    self.marker = replace(self.marker, beat=self.rotation.clock())
                    self.rotation.write_marker(self.marker)
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
        if self.recorded and self.holder() == self.run:
            self.rotation.write_marker(None)

    def release(self) -> None:
        """The run is failing: hand the marker over at once (a zero heartbeat), so the next run
        resumes or cleans up without waiting for the lease. Best effort."""
        self.stop()
        try:
            if self.recorded and self.marker is not None and not self.lost and self.holder() == self.run:
                self.rotation.write_marker(replace(self.marker, beat=0.0))
        except Exception:  # noqa: S110 - the original failure is what the user must see
            pass

    def abandon(self) -> None:
        """Another run got there first: stop, and take this run's marker off if it is on."""
        self.stop()
        try:
            if self.recorded and self.holder() == self.run:
                self.rotation.write_marker(None)
        except Exception:  # noqa: S110 - nothing of this run's is left to protect
            pass
