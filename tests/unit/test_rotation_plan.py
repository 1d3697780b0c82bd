"""The rotation plan is a pure function of what was read: every state, without stand-ins."""

from __future__ import annotations

from collections.abc import Mapping

from pipe.config import KeyPair
from pipe.rotation import DAY, AccessKey, Facts, Marker, Policy, make_plan
from pipe.targets import StoreState

NOW = 1_800_000_000.0
POLICY = Policy(rotate_after=90, deactivate_after=100, delete_after=110, lease=300)


def key(name: str, age: float, status: str = "Active", used_ago: float | None = None) -> AccessKey:
    return AccessKey(name, status, NOW - age * DAY, None if used_ago is None else NOW - used_ago * DAY)


def facts(
    keys: list[AccessKey],
    held: Mapping[str, str | None],
    store: StoreState | None = None,
    marker: Marker | None = None,
    own: KeyPair | None = None,
) -> Facts:
    return Facts(NOW, "ci", tuple(keys), held, store, marker, own)


def test_clean_and_young_means_nothing() -> None:
    plan = make_plan(facts([key("C", 10)], {"a/b": "C"}), POLICY)
    assert (
        plan.state == "clean"
        and not plan.rotate
        and not plan.resume
        and "nothing to do" in plan.lines({})[-1]
    )


def test_due_at_rotate_after_days_and_forced() -> None:
    assert make_plan(facts([key("C", 90)], {"a/b": "C"}), POLICY).rotate
    forced = Policy(90, 100, 110, force=True)
    assert make_plan(facts([key("C", 1)], {"a/b": "C"}), forced).reasons == ["FORCE_ROTATE=true"]


def test_inactive_or_deleted_current_key_is_rotated() -> None:
    assert make_plan(facts([key("C", 1, "Inactive")], {"a/b": "C"}), POLICY).rotate
    assert "not a key of ci" in make_plan(facts([], {"a/b": "X"}), POLICY).reasons[0]


def test_room_is_made_only_from_an_inactive_key() -> None:
    plan = make_plan(facts([key("C", 95), key("O", 150, "Inactive")], {"a/b": "C"}), POLICY)
    assert plan.delete_first == [("O", "inactive; makes room for the new key")]
    blocked = make_plan(facts([key("C", 95), key("O", 50)], {"a/b": "C"}), POLICY)
    assert (
        blocked.state == "blocked"
        and "two active keys" in blocked.blocked
        and "O (active, 50 days, held by no target)" in blocked.blocked
    )


def test_previous_key_deactivated_only_if_unused_since_the_current_key() -> None:
    unused = make_plan(facts([key("C", 10), key("O", 100, used_ago=20)], {"a/b": "C"}), POLICY)
    assert unused.retire == [("deactivate", "O", "100 days old, unused since the current key was created")]
    used = make_plan(facts([key("C", 10), key("O", 100, used_ago=1)], {"a/b": "C"}), POLICY)
    assert used.retire == [] and "kept active" in used.warnings[0]
    old = make_plan(facts([key("C", 10), key("O", 110, "Inactive")], {"a/b": "C"}), POLICY)
    assert old.retire[0][:2] == ("delete", "O")


def test_the_replaced_key_is_never_retired_by_the_run_that_replaces_it() -> None:
    plan = make_plan(facts([key("C", 120)], {"a/b": "C"}), POLICY)
    assert plan.rotate and plan.retire == []


def test_an_unpublished_key_of_a_dead_run() -> None:
    dead = Marker(NOW - 1000, NOW - 1000, "P")
    with_store = make_plan(
        facts([key("C", 95), key("P", 0)], {"a/b": "C"}, StoreState(None, KeyPair("P", "s")), dead), POLICY
    )
    assert with_store.state == "resume" and with_store.resume == KeyPair("P", "s")
    lost = make_plan(facts([key("C", 95), key("P", 0)], {"a/b": "C"}, None, dead), POLICY)
    assert lost.delete_first[0][0] == "P" and lost.rotate
    no_id = make_plan(
        facts([key("C", 95), key("P", 0)], {"a/b": "C"}, None, Marker(NOW - 1000, NOW - 1000, "")), POLICY
    )
    assert no_id.delete_first[0][0] == "P"  # created after the marker: ours


def test_a_live_run_makes_others_stop() -> None:
    live = Marker(NOW - 10, NOW - 5, "P")
    assert make_plan(facts([key("C", 95), key("P", 0)], {"a/b": "C"}, None, live), POLICY).state == "busy"


def test_mixed_targets() -> None:
    held = {"a/b": "P", "a/c": "C"}
    keys = [key("C", 95), key("P", 0)]
    dead = Marker(NOW - 1000, 0, "P")
    resume = make_plan(facts(keys, held, StoreState(None, KeyPair("P", "s")), dead), POLICY)
    assert resume.state == "resume" and resume.resume == KeyPair("P", "s")
    rollback = make_plan(facts(keys, held, None, dead, own=KeyPair("C", "c")), POLICY)
    assert (
        rollback.state == "rollback"
        and rollback.resume == KeyPair("C", "c")
        and rollback.retire[0][:2] == ("delete", "P")
    )
    blocked = make_plan(facts(keys, held, None, dead), POLICY)
    assert blocked.state == "blocked" and "a/b holds P; a/c holds C" in blocked.blocked


def test_new_targets_get_the_current_key_when_its_secret_is_known() -> None:
    store = StoreState(KeyPair("C", "s"), None)
    plan = make_plan(facts([key("C", 5)], {"a/b": "C", "a/new": None}, store), POLICY)
    assert plan.resume == KeyPair("C", "s") and not plan.rotate
    unknown = make_plan(facts([key("C", 5)], {"a/b": "C", "a/new": None}), POLICY)
    assert "hold nothing" in unknown.warnings[0]
