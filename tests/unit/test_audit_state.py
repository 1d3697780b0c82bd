"""Audit's state lives in IAM user tags: every key and value it writes must be one real IAM
accepts, by botocore's model for TagUser (the pattern and the lengths), whatever the keys and
dates; and what it reads back is what it wrote."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from pipe.audit import state
from pipe.rotation.marker import MANAGED_TAG, MANAGED_VALUE
from tests.standins.servicemodel import Catalog, validate

KEYS = ["AKIA" + "Z" * 16, "AKIA" + "0123456789ABCDEF", "ASIA" + "9" * 16]


def tag_violations(key: str, value: str) -> list[str]:
    shape = Catalog(("iam",)).models["iam"].operation_model("TagUser").input_shape
    params = {"UserName": "alice", "Tags": [{"Key": key, "Value": value}]}
    return [str(v) for v in validate(shape, params)]


def test_every_value_audit_writes_is_one_iam_accepts() -> None:
    values: dict[str, list[str]] = {state.AUDIT_TAG: [], state.DEACTIVATED_TAG: [], state.NOTIFIED_TAG: []}
    for phase, started, key_id in itertools.product(("create", "deliver"), (0, 1764568800, 10**12 - 1), KEYS):
        flight = state.InFlight(phase, started, key_id if phase == "deliver" else "")
        values[state.AUDIT_TAG].append(flight.tag())
        assert state.InFlight.parse(flight.tag()) == flight
    days = [date(2026, 12, 1) - timedelta(days=n) for n in (0, 1, 400)]
    for pair in itertools.combinations(KEYS, 2):
        dates = dict(zip(pair, days, strict=False))
        values[state.DEACTIVATED_TAG].append(state.render_dates(dates))
        assert state.parse_dates(state.render_dates(dates)) == dates
        told = state.Notified().after(days[0], pair, KEYS[2], KEYS)
        values[state.NOTIFIED_TAG].append(told.tag())
        assert state.Notified.parse(told.tag()) == told
    values[MANAGED_TAG] = [MANAGED_VALUE]
    for key, found in values.items():
        for value in found:
            assert tag_violations(key, value) == [], (key, value)


def test_the_check_itself_refuses_what_iam_refuses() -> None:
    assert tag_violations(state.NOTIFIED_TAG, "warn=AKIA1,AKIA2")  # a comma
    assert tag_violations(state.AUDIT_TAG, '{"phase": "create"}')
    assert tag_violations(state.AUDIT_TAG, "x" * 257)


def test_values_that_are_not_ours_are_no_state() -> None:
    """A tag someone else wrote never makes audit delete a key."""
    for text in (
        "",
        "phase=deliver",
        "phase=deliver key=AKIA1 started=1",
        "phase=create started=soon",
        "phase=publish started=1",
        "phase=create started=1 started=2",
        "x" * 300,
    ):
        assert state.InFlight.parse(text) is None, text
    assert state.parse_dates("AKIA=2026-12-01 garbage AKIAZZZZZZZZZZZZZZZZ=2026-13-40") == {}
    assert state.Notified.parse("warn=not-a-key new=?") == state.Notified()


def test_a_key_in_flight_is_recognised_by_its_id_or_its_creation_time() -> None:
    named = state.InFlight("deliver", 1000, KEYS[0])
    assert named.covers(KEYS[0], 5000.0) and not named.covers(KEYS[1], 1000.0)
    unnamed = state.InFlight("create", 1000)
    assert unnamed.covers(KEYS[1], 1000 - state.ORPHAN_BEFORE) and unnamed.covers(
        KEYS[1], 1000 + state.ORPHAN_AFTER
    )
    assert not unnamed.covers(KEYS[1], 1000 - state.ORPHAN_BEFORE - 1)
    assert not unnamed.covers(KEYS[1], 1000 + state.ORPHAN_AFTER + 1)
