"""The plan never deletes a key someone else may be using: a key created long after a dead run
stopped is not that run's, and a key targets held with its secret (published, working) is not
deleted by a rollback or a repair."""

from __future__ import annotations

from datetime import UTC, date, datetime

from pipe.credentials import Credentials
from pipe.rotation.marker import Marker
from pipe.rotation.planner import DAY, AccessKey, Facts, Plan, make_plan
from pipe.stores import StoreState
from tests.unit.test_rotation_plan import NOW, POLICY, facts, key


def deleted(plan: Plan) -> set[str]:
    first = {k for k, _ in plan.delete_first}
    return first | {k for action, k, _ in plan.retire if action == "delete"}


# -- finding 1: a dead marker that names no key ----------------------------------------------


def test_a_key_created_days_after_a_dead_run_is_not_its_key() -> None:
    """The run died 3 days ago (marker without a key); an admin created A yesterday."""
    dead = Marker(NOW - 3 * DAY, NOW - 3 * DAY + 60, "")
    plan = make_plan(facts([key("C", 95), key("A", 1)], {"a/b": "C"}, None, dead), POLICY)
    assert "A" not in deleted(plan), plan.lines({})
    assert plan.state == "blocked" and "two active keys" in plan.blocked  # the admin's key is named


def test_a_key_created_while_the_dead_run_was_alive_is_still_its_key() -> None:
    started = NOW - 3 * DAY
    dead = Marker(started, started + 600, "")  # heartbeats for 10 minutes, then nothing
    made = AccessKey("P", "Active", started + 20)
    plan = make_plan(facts([key("C", 95), made], {"a/b": "C"}, None, dead), POLICY)
    assert ("P" in deleted(plan)) and plan.rotate


def test_a_released_or_expired_marker_still_finds_the_key_created_at_its_start() -> None:
    """A failing run hands its marker over with beat=0 (and the harness expires one with beat=1):
    the key created just after the marker's start is still the dead run's."""
    started = NOW - 3600
    made = AccessKey("P", "Active", started + 5)
    for beat in (0.0, 1.0):
        plan = make_plan(facts([key("C", 95), made], {"a/b": "C"}, None, Marker(started, beat, "")), POLICY)
        assert "P" in deleted(plan)
    late = AccessKey("A", "Active", started + 1800)
    plan = make_plan(facts([key("C", 95), late], {"a/b": "C"}, None, Marker(started, 0.0, "")), POLICY)
    assert "A" not in deleted(plan)


# -- finding 2: rollback and repair keep a key that targets held with its secret --------------


def test_a_rollback_keeps_the_published_key_active() -> None:
    """Targets on two keys, no marker; only the old pair is known: every target goes back to C,
    and P, which a/b held with its secret, stays active (steps running with it keep working)."""
    held = {"a/b": "P", "a/c": "C"}
    plan = make_plan(facts([key("C", 95), key("P", 0)], held, own=Credentials("C", "c")), POLICY)
    assert plan.state == "rollback" and plan.resume == Credentials("C", "c") and plan.everywhere
    assert "P" not in deleted(plan), plan.lines(held)
    assert not any(action == "deactivate" for action, _, _ in plan.retire)
    assert any("P" in w and "kept active" in w for w in plan.warnings), plan.warnings


def test_a_repair_keeps_the_in_flight_key_a_target_held() -> None:
    """A dead run in phase publish, STORE=none: a/b took P (id written last, so it holds P's
    secret); a/c may hold a mismatched pair. Rolling back to the known C keeps P active."""
    held = {"a/b": "P", "a/c": "C"}
    dead = Marker(NOW - 1000, 0, "P", "publish")
    plan = make_plan(facts([key("C", 95), key("P", 0)], held, None, dead, Credentials("C", "c")), POLICY)
    assert plan.state == "rollback" and plan.resume == Credentials("C", "c") and plan.everywhere
    assert "P" not in deleted(plan), plan.lines(held)
    assert any("P" in w and "kept active" in w for w in plan.warnings), plan.warnings


def test_a_repair_still_deletes_an_in_flight_key_no_target_held() -> None:
    """phase publish, the in-flight key P reached no target's id, its secret is lost: deleted."""
    held = {"a/b": "C", "a/c": "C"}
    dead = Marker(NOW - 1000, 0, "P", "publish")
    store = StoreState(Credentials("C", "c"), None)
    plan = make_plan(facts([key("C", 95), key("P", 0)], held, store, dead), POLICY)
    assert plan.state == "rollback" and "P" in deleted(plan), plan.lines(held)


def test_a_repair_of_every_target_keeps_keys_a_target_named() -> None:
    """scope=all: a stopped rewrite of every target with K. a/b still names X, which may be a
    working pair (not reached yet): X is kept; the unnamed, unknown K is deleted."""
    held = {"a/b": "X", "a/c": "C"}
    dead = Marker(NOW - 1000, 0, "K", "publish", everywhere=True)
    keys = [key("C", 95), key("X", 1)]
    plan = make_plan(facts(keys, held, None, dead, Credentials("C", "c")), POLICY)
    assert plan.state == "rollback" and "X" not in deleted(plan), plan.lines(held)
    unnamed = make_plan(
        facts([key("C", 95), key("K", 0)], {"a/b": "C"}, None, dead, Credentials("C", "c")), POLICY
    )
    assert "K" in deleted(unnamed), unnamed.lines({})


# -- finding 4: a key this pipe deactivated gets the recovery window --------------------------


def _day(days_ago: float) -> date:
    return datetime.fromtimestamp(NOW - days_ago * DAY, UTC).date()


def test_a_key_deactivated_by_this_pipe_is_kept_for_the_recovery_window() -> None:
    """O is 150 days old (past DELETE_AFTER_DAYS) but was deactivated yesterday: it is kept
    until it has been inactive DELETE_AFTER_DAYS - DEACTIVATE_AFTER_DAYS = 10 days."""
    keys = [key("C", 20), key("O", 150, "Inactive")]
    recent = Facts(NOW, "ci", tuple(keys), {"a/b": "C"}, None, None, None, {"O": _day(1)})
    plan = make_plan(recent, POLICY)
    assert "O" not in deleted(plan), plan.lines({})
    assert any("O was deactivated on" in note and "inactive 10 days" in note for note in plan.notes)
    later = Facts(NOW, "ci", tuple(keys), {"a/b": "C"}, None, None, None, {"O": _day(11)})
    assert ("delete", "O") in [(a, k) for a, k, _ in make_plan(later, POLICY).retire]
    # No date recorded (someone else deactivated it): its age alone decides, as before.
    assert "O" in deleted(make_plan(facts(keys, {"a/b": "C"}), POLICY))
