"""The audit's plan (pipe.audit.planner): each rule of the age policy at and around its
threshold, the recovery window, keys in flight, exempt and managed users, revoke, warnings and
who is e-mailed. Pure: facts in, plan out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipe.audit import state
from pipe.audit.planner import DAY, Key, Policy, User, UserPlan, plan

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC).timestamp()
OLD, NEW = "AKIAOLDOLDOLDOLDOLD1", "AKIANEWNEWNEWNEWNEW2"


def key(
    days: float, status: str = "Active", key_id: str | None = OLD, used_days_ago: float | None = None
) -> Key:
    return Key(key_id, status, NOW - days * DAY, None if used_days_ago is None else NOW - used_days_ago * DAY)


def user(
    *keys: Key, tags: dict[str, str] | None = None, groups: tuple[str, ...] = (), holds: str | None = None
) -> User:
    return User(
        "alice",
        "arn:aws:iam::123456789012:user/alice",
        {"email": "alice@example.com", **(tags or {})},
        frozenset(groups),
        keys,
        listed=True,
        secret_holds=holds,
    )


def policy(mode: str = "enforce", notify: bool = True, **changes: object) -> Policy:
    values: dict[str, object] = {
        "mode": mode,
        "rotate_after": 90,
        "deactivate_after": 100,
        "delete_after": 110,
        "notify_before": 7,
        "now": NOW,
        "exempt_group": "exempt",
        "notify": notify,
    } | changes
    return Policy(**values)  # type: ignore[arg-type]


def acts(result: UserPlan) -> list[tuple[str, str | None]]:
    return [(a.action, a.key) for a in result.actions if a.action != "notify"]


# -- rotate ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("days", "created"), [(89, False), (89.99, False), (90, True), (91, True)])
def test_a_new_key_at_rotate_after_days(days: float, created: bool) -> None:
    result = plan(user(key(days)), policy(notify_before=0))
    assert acts(result) == ([("create", None), ("deliver", None)] if created else [])


def test_no_new_key_when_a_newer_key_exists() -> None:
    result = plan(user(key(95), key(5, key_id=NEW)), policy())
    assert acts(result) == []


def test_two_keys_are_said_and_no_key_is_created() -> None:
    result = plan(user(key(96, key_id=NEW), key(98)), policy(notify_before=0))
    assert acts(result) == []
    assert any("already has two keys" in note for note in result.notes)


def test_an_inactive_key_deleted_first_makes_room_for_the_new_one() -> None:
    gone = key(130, "Inactive", key_id=NEW, used_days_ago=40)
    result = plan(user(key(95), gone), policy(notify_before=0))
    assert acts(result) == [("delete", NEW), ("create", None), ("deliver", None)]


def test_no_new_key_when_secrets_manager_would_refuse_the_name() -> None:
    odd = User("a,b", "arn:aws:iam::123456789012:user/a,b", {}, frozenset(), (key(95),), listed=True)
    result = plan(odd, policy(notify=False, notify_before=0))
    assert acts(result) == [] and "refuses the secret name" in result.notes[0]


# -- deactivate -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("days", "deactivated"), [(99, False), (99.9, False), (100, True), (150, True)])
def test_an_active_key_is_deactivated_at_deactivate_after_days(days: float, deactivated: bool) -> None:
    newer = key(1, key_id=NEW)
    result = plan(user(key(days), newer), policy())
    assert (("deactivate", OLD) in acts(result)) is deactivated


def test_an_active_key_is_never_deleted_in_the_run_that_deactivates_it() -> None:
    result = plan(user(key(500, used_days_ago=400), key(1, key_id=NEW)), policy())
    assert acts(result) == [("deactivate", OLD)]


# -- delete and the recovery window ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("days", "recorded_days_ago", "deleted"),
    [(109, 30, False), (110, 9, False), (110, 10, True), (200, 0, False), (200, 1, False), (200, 10, True)],
)
def test_an_inactive_key_audit_deactivated_waits_the_window_from_its_tag(
    days: int, recorded_days_ago: int, deleted: bool
) -> None:
    when = (datetime.fromtimestamp(NOW, UTC) - timedelta(days=recorded_days_ago)).date().isoformat()
    tags = {state.DEACTIVATED_TAG: f"{OLD}={when}"}
    result = plan(
        user(key(days, "Inactive", used_days_ago=days - 1), key(1, key_id=NEW), tags=tags), policy()
    )
    assert (("delete", OLD) in acts(result)) is deleted


@pytest.mark.parametrize(("used_days_ago", "deleted"), [(9, False), (10, True), (None, True)])
def test_a_key_deactivated_elsewhere_waits_the_window_from_its_last_use(
    used_days_ago: float | None, deleted: bool
) -> None:
    result = plan(user(key(115, "Inactive", used_days_ago=used_days_ago), key(1, key_id=NEW)), policy())
    assert (("delete", OLD) in acts(result)) is deleted


def test_a_key_deactivated_today_is_deleted_neither_today_nor_tomorrow() -> None:
    """The run that deactivates records the date; the window counts from it (10 days here)."""
    first = plan(user(key(115), key(1, key_id=NEW)), policy())
    assert acts(first) == [("deactivate", OLD)]
    for days_later in (0, 1, 9):
        day = (datetime.fromtimestamp(NOW, UTC) + timedelta(days=days_later)).date().isoformat()
        later = policy(now=NOW + days_later * DAY)
        tags = {state.DEACTIVATED_TAG: f"{OLD}={datetime.fromtimestamp(NOW, UTC).date().isoformat()}"}
        result = plan(
            user(key(115 + days_later, "Inactive", used_days_ago=None), key(1, key_id=NEW), tags=tags), later
        )
        assert ("delete", OLD) not in acts(result), day


# -- keys in flight -------------------------------------------------------------------------------
def test_a_key_a_stopped_run_created_and_never_delivered_is_deleted_and_created_again() -> None:
    orphan = key(0.001, key_id=NEW)
    tags = {state.AUDIT_TAG: state.InFlight("create", int(NOW - 60)).tag()}
    result = plan(user(key(95), orphan, tags=tags), policy(notify_before=0))
    assert acts(result) == [("delete", NEW), ("create", None), ("deliver", None)]


def test_a_named_key_in_flight_the_secret_does_not_hold_is_deleted() -> None:
    tags = {state.AUDIT_TAG: state.InFlight("deliver", int(NOW - 60), NEW).tag()}
    result = plan(user(key(95), key(0.001, key_id=NEW), tags=tags, holds=OLD), policy(notify_before=0))
    assert acts(result)[0] == ("delete", NEW) and ("create", None) in acts(result)


def test_a_key_in_flight_the_secret_holds_is_kept_and_announced() -> None:
    tags = {state.AUDIT_TAG: state.InFlight("deliver", int(NOW - 60), NEW).tag()}
    result = plan(user(key(95), key(0.001, key_id=NEW), tags=tags, holds=NEW), policy(notify_before=0))
    assert acts(result) == [] and result.announce == NEW and result.in_flight is not None
    assert [a.action for a in result.actions] == ["notify"]


def test_a_key_created_long_after_a_stopped_run_is_not_taken_for_its_key() -> None:
    users_own = key(0.5, key_id=NEW)  # 12 hours after the stopped run
    tags = {state.AUDIT_TAG: state.InFlight("create", int(NOW - DAY)).tag()}
    result = plan(user(key(95), users_own, tags=tags), policy(notify_before=0))
    assert ("delete", NEW) not in acts(result)


# -- who ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tags", "groups", "status"),
    [
        ({}, ("exempt",), "exempt"),
        ({"aws-credentials-pipe/managed": "rotate"}, (), "managed"),
        ({"aws-credentials-pipe/rotation": "started=1 beat=1 phase=create"}, (), "managed"),
    ],
)
def test_exempt_and_managed_users_are_left_alone(
    tags: dict[str, str], groups: tuple[str, ...], status: str
) -> None:
    for mode in ("enforce", "revoke") if status == "exempt" else ("enforce",):
        result = plan(user(key(50), key(300, "Inactive", key_id=NEW), tags=tags, groups=groups), policy(mode))
        assert result.status == status and result.actions == []


def test_revoke_deactivates_active_keys_and_deletes_inactive_ones_never_both() -> None:
    result = plan(user(key(3), key(2, "Inactive", key_id=NEW)), policy("revoke"))
    assert acts(result) == [("deactivate", OLD), ("delete", NEW)]
    assert len({k for _, k in acts(result)}) == 2


# -- warnings and e-mail --------------------------------------------------------------------------
@pytest.mark.parametrize(("days", "warned"), [(92, False), (93, True), (99, True), (100, False)])
def test_a_warning_within_notify_before_days(days: int, warned: bool) -> None:
    result = plan(user(key(days), key(2, key_id=NEW)), policy())
    assert (OLD in result.warnings) is warned


def test_a_warning_goes_once_per_key() -> None:
    tags = {state.NOTIFIED_TAG: state.Notified("2026-11-30", frozenset({OLD})).tag()}
    result = plan(user(key(95), key(2, key_id=NEW), tags=tags), policy())
    assert result.warnings == {} and result.actions == []


def test_a_user_without_the_email_tag_is_reported_not_notified() -> None:
    bare = User("bob", "arn:aws:iam::123456789012:user/bob", {}, frozenset(), (key(120),), listed=True)
    result = plan(bare, policy())
    assert "notify" not in [a.action for a in result.actions]
    assert "not notified: no email tag" in result.notes
    odd = User("bob", "arn", {"mail": "bob at example"}, frozenset(), (key(120),), listed=True)
    assert "not notified: the mail tag is not an e-mail address" in plan(odd, policy(email_tag="mail")).notes


def test_no_notify_action_without_notify_from() -> None:
    result = plan(user(key(120)), policy(notify=False))
    assert "notify" not in [a.action for a in result.actions]
    assert not any("notified" in note for note in result.notes)


def test_the_report_only_plan_makes_every_user_that_may_need_an_action_a_candidate() -> None:
    """Planned from the credential report (no key ids), a user that may need an action lists
    its keys; one that surely needs none does not."""
    reported = User("alice", "arn", {}, frozenset(), (Key(None, "Active", NOW - 95 * DAY),))
    assert plan(reported, policy()).needs_keys
    quiet = User("alice", "arn", {}, frozenset(), (Key(None, "Active", NOW - 10 * DAY),))
    assert not plan(quiet, policy()).needs_keys


def test_the_key_in_flight_is_the_only_one_deleted() -> None:
    """A key the user made meanwhile is left alone, even one made within minutes of the stopped
    run: by its id once the tag names it (phase=deliver); before, the run's key is the first
    one made after it started."""
    mine = "AKIAMINEMINEMINEMIN3"
    tags = {state.AUDIT_TAG: state.InFlight("deliver", int(NOW - 120), NEW).tag()}
    result = plan(user(key(0.001, key_id=NEW), key(0.0005, key_id=mine), tags=tags), policy(notify_before=0))
    assert acts(result) == [("delete", NEW)]
    unnamed = {state.AUDIT_TAG: state.InFlight("create", int(NOW - 120)).tag()}
    result = plan(
        user(key(0.001, key_id=NEW), key(0.0005, key_id=mine), tags=unnamed), policy(notify_before=0)
    )
    assert acts(result) == [("delete", NEW)]


@pytest.mark.parametrize(("mode", "planned"), [("report", []), ("revoke", [("deactivate", NEW)])])
def test_report_and_revoke_leave_a_key_in_flight_to_enforce(mode: str, planned: list[object]) -> None:
    """Which key the user's secret holds takes DescribeSecret, which only the enforce role has
    (templates/audit-member.yaml): report and revoke neither read the secret nor delete the key
    as undelivered; the tag stays for the next enforce run."""
    tags = {state.AUDIT_TAG: state.InFlight("deliver", int(NOW - 60), NEW).tag()}
    result = plan(user(key(0.001, key_id=NEW), tags=tags), policy(mode, notify=False))
    assert acts(result) == planned and result.in_flight is None
    assert not result.needs_keys or mode == "revoke"
    assert any("the next AUDIT_MODE=enforce run" in note for note in result.notes)


# -- the review of 1.0.0 ----------------------------------------------------------------------------
def test_the_key_a_new_key_replaces_is_not_deactivated_in_the_same_run() -> None:
    """The new key's secret is read with the user's own credentials: the old key stays Active
    until the first run on a later day, and the plan and the e-mail say when."""
    result = plan(user(key(120)), policy())
    assert acts(result) == [("create", None), ("deliver", None)]
    tomorrow = (datetime.fromtimestamp(NOW, UTC) + timedelta(days=1)).date()
    assert result.deferred == {OLD: tomorrow}
    assert any(f"deactivated on {tomorrow.isoformat()}" in note for note in result.notes)
    assert f"{OLD} to be deactivated on {tomorrow.isoformat()}" in result.of("notify")[0].reason


@pytest.mark.parametrize(
    ("new_age_hours", "later_day", "deactivated"),
    [(0.01, False, False), (5, False, False), (6.01, True, True), (30, True, True)],
)
def test_the_old_key_is_deactivated_once_its_replacement_is_from_an_earlier_day(
    new_age_hours: float, later_day: bool, deactivated: bool
) -> None:
    """NOW is 06:00 UTC: a replacement made more than 6 hours ago was made yesterday."""
    newer = key(new_age_hours / 24, key_id=NEW)
    assert (
        datetime.fromtimestamp(newer.created, UTC).date() < datetime.fromtimestamp(NOW, UTC).date()
    ) is later_day
    result = plan(user(key(120), newer), policy())
    assert (("deactivate", OLD) in acts(result)) is deactivated
    assert (OLD in result.deferred) is not deactivated


def test_a_daily_run_deactivates_the_next_day_and_a_second_run_the_same_day_changes_nothing() -> None:
    first = plan(user(key(120)), policy())
    assert ("deactivate", OLD) not in acts(first)
    made = NOW + 5  # the new key, made seconds into the run
    later = NOW + 0.1 * DAY  # the same day, a second run
    same_day = plan(user(Key(OLD, "Active", NOW - 120 * DAY), Key(NEW, "Active", made)), policy(now=later))
    assert acts(same_day) == []
    next_day = policy(now=NOW + DAY - 60)  # tomorrow's run, a minute earlier in the day
    result = plan(user(Key(OLD, "Active", NOW - 120 * DAY), Key(NEW, "Active", made)), next_day)
    assert acts(result) == [("deactivate", OLD)]


@pytest.mark.parametrize(
    ("tags", "newest_days", "mode", "status"),
    [
        ({"aws-credentials-pipe/managed": "rotate"}, 99, "enforce", "managed"),
        ({"aws-credentials-pipe/managed": "rotate"}, 100, "enforce", "audited"),
        ({"aws-credentials-pipe/managed": "anything"}, 400, "enforce", "audited"),
        ({"aws-credentials-pipe/rotation": "whatever"}, 400, "enforce", "audited"),
        ({"aws-credentials-pipe/rotation": "whatever"}, 5, "enforce", "managed"),
        ({"aws-credentials-pipe/managed": "rotate"}, 400, "report", "audited"),
        ({"aws-credentials-pipe/managed": "rotate"}, 5, "revoke", "audited"),
    ],
)
def test_rotates_tag_exempts_only_while_rotate_keeps_the_key_young_and_never_from_revoke(
    tags: dict[str, str], newest_days: int, mode: str, status: str
) -> None:
    result = plan(user(key(newest_days), tags=tags), policy(mode))
    assert result.status == status
    if status == "audited" and mode == "enforce" and state.managed(tags):
        assert f"managed by rotate, but its newest key is {newest_days} days old: audited" in result.notes
        assert ("create", None) in acts(result)
    if mode == "revoke":
        assert acts(result) == [("deactivate", OLD)]


def test_an_inactive_key_in_flight_the_secret_holds_is_not_announced() -> None:
    tags = {state.AUDIT_TAG: state.InFlight("deliver", int(NOW - 60), NEW).tag()}
    stopped = key(0.001, "Inactive", key_id=NEW)
    result = plan(user(key(95, "Inactive"), stopped, tags=tags, holds=NEW), policy(notify_before=0))
    assert result.announce == "" and acts(result) == [] and result.in_flight is not None
    assert any("not announced" in note for note in result.notes)


def test_the_recovery_window_counts_from_a_use_after_audit_deactivated_the_key() -> None:
    """Deactivated by audit 30 days ago, reactivated, used 3 days ago, deactivated again."""
    when = (datetime.fromtimestamp(NOW, UTC) - timedelta(days=30)).date().isoformat()
    tags = {state.DEACTIVATED_TAG: f"{OLD}={when}"}
    result = plan(user(key(200, "Inactive", used_days_ago=3), key(1, key_id=NEW), tags=tags), policy())
    assert ("delete", OLD) not in acts(result)
    assert any("last used 3 days ago" in note for note in result.notes)
    used_before = plan(user(key(200, "Inactive", used_days_ago=31), key(1, key_id=NEW), tags=tags), policy())
    assert ("delete", OLD) in acts(used_before)


def test_rotates_tag_is_overruled_only_on_keys_listed_afresh() -> None:
    """The credential report may predate rotate's newest key: a tagged user it shows with an
    old key (or none) lists its keys before being audited."""
    tags = {"aws-credentials-pipe/managed": "rotate"}
    reported = User("ci", "arn", tags, frozenset(), (Key(None, "Active", NOW - 400 * DAY),))
    assert plan(reported, policy("report")).needs_keys
    listed = User("ci", "arn", tags, frozenset(), (key(400), key(1, key_id=NEW)), listed=True)
    assert plan(listed, policy()).status == "managed"


def test_the_plan_says_when_audits_tags_will_not_fit() -> None:
    """IAM refuses a user's 51st tag: the plan says the state will not be recorded, and still plans
    the actions (only when a tag audit would add does not fit; overwriting one of its own does)."""
    full = {f"team-{i:02}": "x" for i in range(49)}  # with the email tag: 50
    result = plan(user(key(95), tags=full), policy())
    assert [a.action for a in result.actions] == ["create", "deliver", "notify"]
    assert any(n.startswith("state not recorded: user at IAM's 50-tag limit (50 tags)") for n in result.notes)
    held = {**{f"team-{i:02}": "x" for i in range(46)}, **dict.fromkeys(state.TAGS, "")}
    assert not any("state not recorded" in n for n in plan(user(key(95), tags=held), policy()).notes)
    assert not any("state not recorded" in n for n in plan(user(key(95)), policy()).notes)


def test_a_stopped_runs_key_recorded_on_the_secret_is_settled_like_one_recorded_on_the_user() -> None:
    """A user with no room for the in-flight tag: the stopped run recorded it on the user's secret.
    The key it names, which the secret does not hold, is deleted and made again; the user's own
    key is not; the plan says where the record is, and only enforce settles it."""
    from dataclasses import replace

    from pipe.audit.planner import no_room

    full = {f"team-{i:02}": "x" for i in range(49)}  # with the email tag: 50
    flight = state.InFlight("deliver", int(NOW) - 60, NEW).tag()
    stopped = replace(user(key(95), key(0.001, key_id=NEW), tags=full), secret_flight=flight)
    assert no_room(stopped.tags) and not no_room({**stopped.tags, state.AUDIT_TAG: flight})
    result = plan(stopped, policy())
    assert result.flight_on_secret and result.in_flight == state.InFlight.parse(flight)
    assert acts(result) == [("delete", NEW), ("create", None), ("deliver", None)]
    assert any("recorded on the user's secret" in n for n in result.notes), result.notes
    assert not any("administrator" in n for n in result.notes)
    held = plan(replace(stopped, secret_holds=NEW), policy())
    assert held.announce == NEW and ("delete", NEW) not in acts(held)
    for mode in ("report", "revoke"):
        assert plan(stopped, policy(mode)).in_flight is None
    # A record on the user wins over one on the secret (the user's is the later: it had room).
    tagged = replace(stopped, tags={**stopped.tags, state.AUDIT_TAG: state.InFlight("create", 1).tag()})
    assert not plan(tagged, policy()).flight_on_secret


def test_iams_clock_is_read_from_the_answers_date() -> None:
    from pipe.audit.reader import clock_skew

    answer = {"ResponseMetadata": {"HTTPHeaders": {"date": "Tue, 01 Dec 2026 06:01:30 GMT"}}}
    assert clock_skew(answer, NOW) == 90.0
    assert (
        clock_skew({}, NOW) == 0.0
        and clock_skew({"ResponseMetadata": {"HTTPHeaders": {"date": "x"}}}, NOW) == 0.0
    )
