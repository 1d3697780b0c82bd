"""The pending marker is an IAM user tag: every value it can take must be one real IAM accepts,
by botocore's service model for TagUser (the pattern and the length), not by moto's leniency."""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Callable

import botocore.session
import pytest

from pipe.rotation.marker import MARKER_TAG, PHASES, Marker


@functools.cache
def _tag_shape(member: str) -> dict[str, object]:
    model = botocore.session.get_session().get_service_model("iam")
    tags = model.operation_model("TagUser").input_shape.members["Tags"]
    return dict(tags.member.members[member].metadata)


def java_class(pattern: str) -> tuple[Callable[[str], bool], str]:
    """The model's pattern is a Java regex made of one character class and a quantifier, such as
    ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*``. Python's re has no ``\\p{..}``: translate the class by hand
    (Unicode categories through unicodedata)."""
    match = re.fullmatch(r"\[(.*)\]([*+])", pattern)
    assert match, pattern
    body, quantifier = match.groups()
    categories: list[str] = []
    literals: set[str] = set()
    rest = body
    while rest:
        if rest.startswith("\\p{"):
            end = rest.index("}")
            categories.append(rest[3:end])
            rest = rest[end + 1 :]
        elif rest.startswith("\\"):
            literals.add(rest[1])
            rest = rest[2:]
        else:
            assert rest[0] not in "[]^", pattern  # nothing this translator does not understand
            literals.add(rest[0])
            rest = rest[1:]

    def allowed(char: str) -> bool:
        return char in literals or any(unicodedata.category(char).startswith(c) for c in categories)

    return allowed, quantifier


def accepted(value: str, member: str = "Value") -> bool:
    shape = _tag_shape(member)
    allowed, quantifier = java_class(str(shape["pattern"]))
    length_ok = int(str(shape.get("min", 0))) <= len(value) <= int(str(shape["max"]))
    return length_ok and (quantifier == "*" or bool(value)) and all(allowed(c) for c in value)


def test_the_translation_refuses_what_iam_refuses() -> None:
    assert accepted("key=AKIA1234 started=1 beat=2 phase=publish")
    assert not accepted('{"started": 1, "heartbeat": 2, "key": ""}')  # the old JSON marker
    assert not accepted("a,b") and not accepted("x" * 257)
    assert accepted("ünïcödé letters 12")  # \p{L}, \p{N} and \p{Z} are Unicode classes


def test_the_tag_key_is_accepted() -> None:
    assert accepted(MARKER_TAG, "Key") and not MARKER_TAG.lower().startswith("aws:")


KEYS = ["", "AKIAIOSFODNN7EXAMPLE", "AKIA" + "Z9" * 62]
TIMES = [0.0, 1.0, 1_764_500_000.7, 999_999_999_999.0]
RUNS = ["", "0f", "f" * 32]


@pytest.mark.parametrize(("key", "phase", "everywhere"), list(itertools.product(KEYS, PHASES, (False, True))))
def test_every_marker_value_is_accepted_and_reads_back(key: str, phase: str, everywhere: bool) -> None:
    for started, beat, run in itertools.product(TIMES, TIMES, RUNS):
        marker = Marker(started, beat, key, phase, everywhere, run)
        value = marker.tag()
        assert accepted(value), value
        assert Marker.parse(value) == Marker(
            float(int(started)), float(int(beat)), key, phase, everywhere, run
        )


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        '{"started": 1, "heartbeat": 2, "key": "AKIA1234567890123456"}',
        "started=1 beat=2 phase=publish phase=create",
        "started=1 beat=2 phase=deleting",
        "started=1 beat=2 key=akia-lowercase-1234",
        "started=١٢ beat=2",  # Unicode digits are not a time
        "started=1 beat=2 scope=some",
        "started=1 beat=2 run=XYZ",
        "beat=2 phase=create",
        "started=1 beat=2 junk",
        "started=1 " + "x" * 300,
    ],
)
def test_an_unparsable_marker_is_no_marker(value: str | None) -> None:
    assert Marker.parse(value) is None


def test_a_marker_without_a_heartbeat_beats_when_it_started() -> None:
    assert Marker.parse("started=5 phase=create") == Marker(5.0, 5.0)
