"""The rotation plan is a pure function of what was read: every state, without stand-ins."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from pipe.credentials import Credentials
from pipe.rotation.marker import MARKER_TAG, Marker
from pipe.rotation.planner import DAY, AccessKey, Facts, Policy, make_plan
from pipe.stores import StoreState

NOW = 1_800_000_000.0
POLICY = Policy(rotate_after=90, deactivate_after=100, delete_after=110, lease=300)


def key(name: str, age: float, status: str = "Active", used_ago: float | None = None) -> AccessKey:
    return AccessKey(name, status, NOW - age * DAY, None if used_ago is None else NOW - used_ago * DAY)


def facts(
    keys: list[AccessKey],
    held: Mapping[str, str | None],
    store: StoreState | None = None,
    marker: Marker | None = None,
    own: Credentials | None = None,
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
        facts([key("C", 95), key("P", 0)], {"a/b": "C"}, StoreState(None, Credentials("P", "s")), dead),
        POLICY,
    )
    assert with_store.state == "resume" and with_store.resume == Credentials("P", "s")
    lost = make_plan(facts([key("C", 95), key("P", 0)], {"a/b": "C"}, None, dead), POLICY)
    assert lost.delete_first[0][0] == "P" and lost.rotate
    made = AccessKey("P", "Active", NOW - 990)
    no_id = make_plan(
        facts([key("C", 95), made], {"a/b": "C"}, None, Marker(NOW - 1000, NOW - 1000, "")), POLICY
    )
    assert no_id.delete_first[0][0] == "P"  # created just after the marker, while its run lived: ours


def test_a_live_run_makes_others_stop() -> None:
    live = Marker(NOW - 10, NOW - 5, "P")
    assert make_plan(facts([key("C", 95), key("P", 0)], {"a/b": "C"}, None, live), POLICY).state == "busy"


def test_mixed_targets() -> None:
    held = {"a/b": "P", "a/c": "C"}
    keys = [key("C", 95), key("P", 0)]
    dead = Marker(NOW - 1000, 0, "P")
    resume = make_plan(facts(keys, held, StoreState(None, Credentials("P", "s")), dead), POLICY)
    assert resume.state == "resume" and resume.resume == Credentials("P", "s")
    rollback = make_plan(facts(keys, held, None, dead, own=Credentials("C", "c")), POLICY)
    assert (
        rollback.state == "rollback"
        and rollback.resume == Credentials("C", "c")
        and rollback.retire == []  # P was published (a/b holds it): kept active, warned
        and "P was published" in rollback.warnings[0]
    )
    blocked = make_plan(facts(keys, held, None, dead), POLICY)
    assert blocked.state == "blocked" and "a/b holds P; a/c holds C" in blocked.blocked


def test_new_targets_get_the_current_key_when_its_secret_is_known() -> None:
    store = StoreState(Credentials("C", "s"), None)
    plan = make_plan(facts([key("C", 5)], {"a/b": "C", "a/new": None}, store), POLICY)
    assert plan.resume == Credentials("C", "s") and not plan.rotate
    unknown = make_plan(facts([key("C", 5)], {"a/b": "C", "a/new": None}), POLICY)
    assert "hold nothing" in unknown.warnings[0]


# -- the grace period ---------------------------------------------------------------------
GRACE = Policy(rotate_after=90, deactivate_after=100, delete_after=110, lease=300, grace_days=7)


@pytest.mark.parametrize(
    ("current_age", "deactivated"), [(0.0, False), (6.99, False), (7.0, True), (7.01, True), (30, True)]
)
def test_a_previous_key_waits_for_the_grace_period(current_age: float, deactivated: bool) -> None:
    plan = make_plan(facts([key("C", current_age), key("O", 101)], {"a/b": "C"}), GRACE)
    assert bool(plan.retire) is deactivated, plan.lines({})
    if not deactivated:
        assert "ROTATION_GRACE_DAYS=7" in plan.notes[0]


@pytest.mark.parametrize(("used_after_seconds", "deactivated"), [(-1, True), (0, True), (1, False)])
def test_a_previous_key_used_after_the_current_key_was_created_is_kept(
    used_after_seconds: float, deactivated: bool
) -> None:
    current = key("C", 10)
    used = current.created + used_after_seconds
    previous = AccessKey("O", "Active", NOW - 101 * DAY, used)
    plan = make_plan(facts([current, previous], {"a/b": "C"}), GRACE)
    assert bool(plan.retire) is deactivated
    assert bool(plan.warnings) is not deactivated


def test_a_run_that_publishes_never_deactivates() -> None:
    store = StoreState(Credentials("C", "s"), None)
    plan = make_plan(facts([key("C", 30), key("O", 150)], {"a/b": "C", "a/new": None}, store), GRACE)
    assert plan.resume == Credentials("C", "s") and plan.retire == []
    assert "never deactivated by a run that publishes" in plan.notes[0]
    # An inactive key past DELETE_AFTER_DAYS may still go: deleting it breaks nothing.
    inactive = make_plan(
        facts([key("C", 30), key("O", 150, "Inactive")], {"a/b": "C", "a/new": None}, store), GRACE
    )
    assert inactive.retire[0][:2] == ("delete", "O")


# -- what a dead run was doing (the marker's phase) ---------------------------------------
def dead(key_id: str, phase: str = "create", everywhere: bool = False) -> Marker:
    return Marker(NOW - 1000, NOW - 1000, key_id, phase, everywhere, "ab12")


def test_created_and_stored_never_published_resumes_after_proving_it() -> None:
    plan = make_plan(
        facts(
            [key("A", 95), key("P", 0)],
            {"a/b": "A", "a/c": "A"},
            StoreState(None, Credentials("P", "p")),
            dead("P"),
        ),
        GRACE,
    )
    assert (
        plan.state == "resume" and plan.resume == Credentials("P", "p") and plan.prove and not plan.everywhere
    )


def test_created_never_published_and_lost_is_deleted() -> None:
    plan = make_plan(facts([key("A", 10), key("P", 0)], {"a/b": "A"}, StoreState(), dead("P")), GRACE)
    assert plan.delete_first == [
        ("P", "created by a rotation that stopped before publishing it; its secret is lost")
    ]
    assert not plan.rotate and plan.clear_marker and plan.state == "clean"


def test_publishing_with_the_key_in_the_store_rewrites_every_target_not_on_it() -> None:
    held = {"a/b": "P", "a/c": "A", "a/d": "A"}
    store = StoreState(Credentials("A", "a"), Credentials("P", "p"))
    plan = make_plan(facts([key("A", 95), key("P", 0)], held, store, dead("P", "publish")), GRACE)
    assert plan.state == "resume" and plan.resume == Credentials("P", "p") and plan.prove
    assert not plan.everywhere  # every suspect target's id differs from P: each gets both variables
    assert "a/c, a/d may hold its secret beside another id" in plan.reasons[0]


def test_publishing_with_the_secret_lost_and_no_target_on_it_rotates_everywhere() -> None:
    """The issue's case: the id write failed, the target holds the old id beside the new secret.
    Nothing may end clean: the lost key goes, and a new key is written to every target."""
    plan = make_plan(
        facts([key("A", 95), key("P", 0)], {"a/b": "A", "a/c": "A"}, None, dead("P", "publish")), GRACE
    )
    assert plan.state == "repair" and plan.rotate and plan.everywhere
    assert plan.delete_first[0][0] == "P"
    assert "every target gets a new key" in plan.reasons[0]
    # Not due by age, not forced: still a repair.
    young = make_plan(facts([key("A", 1), key("P", 0)], {"a/b": "A"}, None, dead("P", "publish")), GRACE)
    assert young.rotate and young.everywhere


def test_publishing_with_the_secret_lost_and_the_key_deleted_rotates_everywhere() -> None:
    plan = make_plan(facts([key("A", 5)], {"a/b": "A"}, None, dead("P", "publish")), GRACE)
    assert plan.rotate and plan.everywhere and plan.delete_first == []


def test_publishing_with_targets_on_both_keys_and_no_secret_known_is_blocked() -> None:
    held = {"a/b": "P", "a/c": "A"}
    plan = make_plan(facts([key("A", 95), key("P", 0)], held, None, dead("P", "publish")), GRACE)
    assert plan.state == "blocked" and "a/c may hold its secret beside another id" in plan.blocked
    rollback = make_plan(
        facts([key("A", 95), key("P", 0)], held, None, dead("P", "publish"), own=Credentials("A", "a")), GRACE
    )
    assert rollback.state == "rollback" and rollback.resume == Credentials("A", "a") and not rollback.prove
    assert rollback.everywhere  # a/c's id names A but may hold P's secret: both variables are rewritten
    assert rollback.retire == []  # a/b held P with its secret (the id is written last): P stays active
    assert "P was published (a/b held it)" in rollback.warnings[0]


def test_publishing_finished_on_every_target_is_clean() -> None:
    plan = make_plan(
        facts([key("A", 95), key("P", 0)], {"a/b": "P", "a/c": "P"}, None, dead("P", "publish")), GRACE
    )
    assert plan.state == "clean" and plan.clear_marker and not plan.writes and plan.current == "P"


def test_a_target_holding_nothing_is_not_suspect() -> None:
    plan = make_plan(facts([key("P", 0)], {"a/b": "P", "a/new": None}, None, dead("P", "publish")), GRACE)
    assert plan.state == "clean" and "hold nothing" in plan.warnings[0]


def test_a_dead_rewrite_of_every_target_is_finished_or_redone() -> None:
    held = {"a/b": "A", "a/c": "A"}
    known = make_plan(
        facts([key("A", 95), key("B", 1)], held, None, dead("A", "publish", True), own=Credentials("A", "a")),
        GRACE,
    )
    assert known.resume == Credentials("A", "a") and known.everywhere
    assert known.retire[0][:2] == ("delete", "B")
    lost = make_plan(facts([key("A", 95), key("B", 1)], held, None, dead("A", "publish", True)), GRACE)
    assert lost.state == "repair" and lost.everywhere and lost.delete_first[0][0] == "B"
    # A repair that stopped before its new key was published is still a repair.
    again = make_plan(facts([key("A", 95), key("C", 0)], held, None, dead("C", "create", True)), GRACE)
    assert again.state == "repair" and again.everywhere and again.delete_first[0][0] == "C"


def test_a_store_that_lags_gets_the_current_key() -> None:
    store = StoreState(Credentials("A", "a"), Credentials("P", "p"))
    plan = make_plan(facts([key("A", 95), key("P", 0)], {"a/b": "P"}, store, dead("P", "publish")), GRACE)
    assert plan.resume == Credentials("P", "p") and "the store does not hold P as current yet" in plan.reasons


def test_a_pending_key_in_the_store_without_a_marker_is_resumed() -> None:
    store = StoreState(Credentials("A", "a"), Credentials("P", "p"))
    plan = make_plan(facts([key("A", 95), key("P", 0)], {"a/b": "A"}, store), GRACE)
    assert plan.state == "resume" and plan.resume == Credentials("P", "p")


def test_a_live_marker_stops_other_runs_whatever_the_targets_hold() -> None:
    live = Marker(NOW - 10, NOW - 5, "P", "publish", False, "ab12")
    assert make_plan(facts([key("P", 0)], {"a/b": "P"}, None, live), GRACE).state == "busy"


# -- self-service (seed 002) ----------------------------------------------------------------
def test_self_service_deletes_its_own_old_key_after_the_rotation() -> None:
    own = Credentials("A", "a")
    plan = make_plan(
        facts([key("A", 3)], {"profile:default": "A"}, None, None, own), Policy(90, 100, 110, force=True)
    )
    assert plan.rotate and plan.retire[0][:2] == ("delete", "A")
    kept = make_plan(
        facts([key("A", 3)], {"profile:default": "A"}, None, None, own),
        Policy(90, 100, 110, force=True, keep_old_key=True),
    )
    assert kept.retire == [] and "KEEP_OLD_KEY=true" in kept.notes[0]
    # With a Bitbucket target, running pipelines may hold the old key: the age policy applies.
    shared = make_plan(
        facts([key("A", 3)], {"profile:default": "A", "a/b": "A"}, None, None, own),
        Policy(90, 100, 110, force=True),
    )
    assert shared.retire == []


def test_without_a_store_the_plan_says_so() -> None:
    plan = make_plan(facts([key("A", 95)], {"a/b": "A"}, None), GRACE)
    text = "\n".join(plan.lines({"a/b": "A"}))
    assert "store it as pending" not in text and "and the store" not in text
    stored = make_plan(facts([key("A", 95)], {"a/b": "A"}, StoreState()), GRACE)
    assert "store it as pending" in "\n".join(stored.lines({}))


# -- IAM's 50-tag quota (issue 15 item 1) -----------------------------------------------------------
FULL = frozenset(f"team/{i}" for i in range(50))


def test_at_the_tag_quota_a_rotation_with_a_store_goes_on_without_its_marker() -> None:
    base = facts([key("C", 95)], {"a/b": "C"}, store=StoreState())
    plan = make_plan(Facts(**{**base.__dict__, "tag_keys": FULL}), POLICY)
    assert plan.rotate and not plan.blocked
    assert any("works without its marker" in note for note in plan.notes)
    replaced = make_plan(Facts(**{**base.__dict__, "tag_keys": FULL - {"team/0"} | {MARKER_TAG}}), POLICY)
    assert not any("without its marker" in note for note in replaced.notes)  # the marker replaces itself


def test_at_the_tag_quota_without_a_store_a_rotation_does_not_start() -> None:
    base = facts([key("C", 95)], {"a/b": "C"})
    plan = make_plan(Facts(**{**base.__dict__, "tag_keys": FULL}), POLICY)
    assert plan.state == "blocked" and "50 tags" in plan.blocked


def test_at_the_tag_quota_an_undated_inactive_key_keeps_a_window_from_its_own_dates() -> None:
    """The current key is 8 days old: the old key cannot have been deactivated before day 7 of
    it (ROTATION_GRACE_DAYS), one day ago, so the 10-day window has 9 days to go."""
    keys = [key("C", 8), key("O", 115, status="Inactive", used_ago=9)]
    base = facts(keys, {"a/b": "C"}, store=StoreState())
    kept = make_plan(Facts(**{**base.__dict__, "tag_keys": FULL}), POLICY)
    assert kept.retire == [] and any("no day recorded" in note for note in kept.notes)
    # With room for the tag, no day recorded means someone else deactivated it: age alone.
    aged = make_plan(base, POLICY)
    assert [(a, k) for a, k, _ in aged.retire] == [("delete", "O")]
    late = [key("C", 18), key("O", 125, status="Inactive", used_ago=19)]
    gone = make_plan(
        Facts(**{**facts(late, {"a/b": "C"}, store=StoreState()).__dict__, "tag_keys": FULL}), POLICY
    )
    assert [(a, k) for a, k, _ in gone.retire] == [("delete", "O")]


# -- the claim in the store: the marker's stand-in at the tag quota (issue 15 items 1 and 2) -------
def claim(started_ago: float, beat_ago: float | None = None) -> Marker:
    beat = NOW - (started_ago if beat_ago is None else beat_ago)
    return Marker(NOW - started_ago, beat, run="0123abcd")


def test_a_live_claim_in_the_store_makes_the_run_busy() -> None:
    base = facts([key("C", 95)], {"a/b": "C"}, store=StoreState(claim=claim(10)))
    plan = make_plan(Facts(**{**base.__dict__, "tag_keys": FULL}), POLICY)
    assert plan.state == "busy" and "claim" in plan.blocked


def test_a_dead_claim_owns_the_key_created_in_its_lifetime_and_held_nowhere() -> None:
    """Killed between CreateAccessKey's answer and the store's pending write: the key made 5 s
    after the claim is that run's (its secret is lost) and goes first; the rotation goes on."""
    made = AccessKey("K", "Active", NOW - 3600 + 5)
    base = facts([key("C", 95), made], {"a/b": "C"}, store=StoreState(claim=claim(3600)))
    plan = make_plan(Facts(**{**base.__dict__, "tag_keys": FULL}), POLICY)
    assert plan.rotate and not plan.blocked
    assert [k for k, _ in plan.delete_first] == ["K"] and plan.clear_claim


def test_a_dead_claim_never_owns_a_key_a_person_made_later() -> None:
    """A key created after the claim's run could have (its start plus the lease, at least 300 s)
    is someone else's: it is kept, and the run stops at IAM's two-key limit instead."""
    later = AccessKey("P", "Active", NOW - 3600 + 400)
    base = facts([key("C", 95), later], {"a/b": "C"}, store=StoreState(claim=claim(3600, beat_ago=0 + 3600)))
    plan = make_plan(Facts(**{**base.__dict__, "tag_keys": FULL}), POLICY)
    assert plan.delete_first == [] and plan.state == "blocked" and "two active keys" in plan.blocked


def test_a_dead_claim_with_nothing_to_do_is_cleared() -> None:
    plan = make_plan(facts([key("C", 10)], {"a/b": "C"}, store=StoreState(claim=claim(3600))), POLICY)
    assert plan.clear_claim and "clear the claim a stopped rotation left in the store" in "\n".join(
        plan.lines({})
    )
