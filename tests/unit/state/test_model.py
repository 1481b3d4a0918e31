"""State values and their pure update functions: per-key last-write-wins traits, email order,
held tracks, alias merge, contact ids, and the JSON round trip the faust tables rely on."""

from __future__ import annotations

import orjson

from streamproc.core.state.model import (
    MAX_IDS, Contact, KnownUser, add_email, add_user_id, email_for, hold, mark_identified,
    merge_traits, merge_users, set_clevertap_id, touch,
)

T9, T10, T11 = 1714554000.0, 1714557600.0, 1714561200.0


def test_traits_newer_wins_older_only_adds_keys() -> None:
    traits: dict = {}
    ts: dict = {}
    merge_traits(traits, ts, {"plan": "pro", "city": "Oslo"}, T11)
    changed = merge_traits(traits, ts, {"plan": "free", "age": 30}, T9)
    assert traits == {"plan": "pro", "city": "Oslo", "age": 30}
    assert ts == {"plan": T11, "city": T11, "age": T9}
    assert changed == ["age"]


def test_traits_same_timestamp_last_arrival_wins() -> None:
    traits: dict = {"plan": "pro"}
    ts = {"plan": T10}
    assert merge_traits(traits, ts, {"plan": "team"}, T10) == ["plan"]
    assert traits == {"plan": "team"}


def test_traits_unchanged_value_and_time_is_not_a_change() -> None:
    traits, ts = {"plan": "pro"}, {"plan": T10}
    assert merge_traits(traits, ts, {"plan": "pro"}, T10) == []


def test_emails_most_recent_last_deduped_by_normalised_email() -> None:
    user = KnownUser("u1")
    add_email(user, "a@example.com", T10)
    add_email(user, "b@example.com", T11)
    add_email(user, "A@Example.com ", T11 + 1)  # same contact, newer: moves last, new spelling
    assert user.emails == ["b@example.com", "A@Example.com "]
    add_email(user, "c@example.com", T9)  # late, older: goes first
    assert user.emails == ["c@example.com", "b@example.com", "A@Example.com "]
    assert user.latest_email == "A@Example.com "


def test_older_sighting_keeps_newer_time_and_spelling() -> None:
    user = KnownUser("u1")
    add_email(user, "A@Example.com", T11)
    add_email(user, "b@example.com", T10)
    add_email(user, "a@example.com", T9)
    assert user.emails == ["b@example.com", "A@Example.com"]
    assert user.email_ts == {"a@example.com": T11, "b@example.com": T10}


def test_email_for_prefers_a_known_candidate() -> None:
    user = KnownUser("u1")
    add_email(user, "a@example.com", T9)
    add_email(user, "b@example.com", T10)
    assert email_for(user, "A@EXAMPLE.com") == "A@EXAMPLE.com"
    assert email_for(user, "stranger@example.com") == "b@example.com"
    assert email_for(user, None) == "b@example.com"
    assert email_for(KnownUser("u2"), "a@example.com") is None


def test_hold_is_bounded_and_returns_the_oldest() -> None:
    user = KnownUser("u1")
    assert hold(user, {"held_at": 1}, limit=2) == []
    assert hold(user, {"held_at": 2}, limit=2) == []
    assert hold(user, {"held_at": 3}, limit=2) == [{"held_at": 1}]
    assert [p["held_at"] for p in user.pending] == [2, 3]


def test_touch_widens_seen_times() -> None:
    user = KnownUser("u1")
    touch(user, T10)
    touch(user, T9)
    touch(user, T11)
    assert (user.first_seen, user.last_seen) == (T9, T11)


def test_alias_merge_unions_emails_and_merges_traits_by_time() -> None:
    target = KnownUser("u1", traits={"plan": "pro"}, trait_ts={"plan": T10},
                       first_seen=T10, last_seen=T10, pending=[{"held_at": 5}])
    add_email(target, "work@example.com", T10)
    previous = KnownUser("anon-1", traits={"plan": "free", "city": "Rome"},
                         trait_ts={"plan": T9, "city": T9}, first_seen=T9, last_seen=T11,
                         pending=[{"held_at": 3}])
    add_email(previous, "home@example.com", T9)
    merge_users(target, previous)
    assert target.emails == ["home@example.com", "work@example.com"]
    assert target.traits == {"plan": "pro", "city": "Rome"}
    assert (target.first_seen, target.last_seen) == (T9, T11)
    assert [p["held_at"] for p in target.pending] == [3, 5]


def test_contact_ids_most_recent_last_and_bounded() -> None:
    contact = Contact("a@example.com")
    add_user_id(contact, "u1")
    add_user_id(contact, "u2", anonymous_id="anon-1")
    add_user_id(contact, "u1")
    assert contact.user_ids == ["u2", "u1"] and contact.latest_user_id == "u1"
    assert contact.anonymous_ids == ["anon-1"]
    for i in range(MAX_IDS + 5):
        add_user_id(contact, f"x{i}")
    assert len(contact.user_ids) == MAX_IDS and contact.user_ids[-1] == f"x{MAX_IDS + 4}"


def test_clevertap_id_newest_wins_none_keeps() -> None:
    contact = Contact("a@example.com")
    set_clevertap_id(contact, "ct-1")
    set_clevertap_id(contact, None)
    assert contact.clevertap_id == "ct-1"
    set_clevertap_id(contact, "ct-2")
    assert contact.clevertap_id == "ct-2"


def test_round_trip_through_table_bytes() -> None:
    user = KnownUser("u1", traits={"plan": "pro", "address": {"city": "Pune"}},
                     trait_ts={"plan": T10, "address": T10}, first_seen=T9, last_seen=T10,
                     pending=[{"held_at": T10, "event": {"type": "track"}, "source": {}}])
    add_email(user, "a@example.com", T10)
    assert KnownUser.loads(user.dumps()) == user
    assert KnownUser.from_dict(orjson.loads(orjson.dumps(user.to_dict()))) == user
    contact = Contact("A@Example.com", user_ids=["u1"], anonymous_ids=["anon"],
                      traits={"plan": "pro"}, trait_ts={"plan": T10}, clevertap_id="ct",
                      first_seen=T9, last_seen=T10)
    mark_identified(contact)
    assert Contact.loads(contact.dumps()) == contact
    assert contact.key == "a@example.com"


def test_from_dict_fills_defaults() -> None:
    assert KnownUser.from_dict({"user_id": "u1"}) == KnownUser("u1")
    assert Contact.from_dict({"email": "a@example.com"}) == Contact("a@example.com")
