"""Consent: a trait reaches a destination only through messages its `integrations` object
enabled for that destination, also when traits are merged from state into a later call."""

from __future__ import annotations

from test_routing import Pipeline

from streamproc.core.routing import RoutingConfig


def identify(mid: str, ts: str, traits: dict, integrations: dict | None = None) -> dict:
    event = {"type": "identify", "userId": "u1", "messageId": mid, "timestamp": ts,
             "traits": traits}
    if integrations is not None:
        event["integrations"] = integrations
    return {"kind": "segment", "event": event}


def upserts(pipe: Pipeline, dest: str) -> list[dict]:
    return [r.payload["traits"] for r in pipe.records if r.destination == dest]


def test_a_trait_kept_out_of_mailjet_stays_out_when_merged_later() -> None:
    pipe = Pipeline(RoutingConfig(), {})
    pipe.feed(identify("m1", "2026-11-20T10:00:00Z", {"email": "a@example.com", "plan": "free"}))
    pipe.feed(identify("m2", "2026-11-20T10:01:00Z",
                       {"email": "a@example.com", "vip_audience": True, "plan": "pro"},
                       {"All": False, "Mailmodo": True}))
    pipe.feed(identify("m3", "2026-11-20T10:02:00Z", {"email": "a@example.com"}))
    mailjet = upserts(pipe, "mailjet")
    assert len(mailjet) == 2  # m1 and m3 (m2 turned Mailjet off)
    assert "vip_audience" not in mailjet[1] and "plan" not in mailjet[1]  # m2's values
    assert mailjet[0]["plan"] == "free"  # what Mailjet was allowed to get, it already has
    mailmodo = upserts(pipe, "mailmodo")
    assert mailmodo[2]["vip_audience"] is True and mailmodo[2]["plan"] == "pro"


def test_a_later_enabled_message_setting_the_trait_again_sends_it() -> None:
    pipe = Pipeline(RoutingConfig(), {})
    pipe.feed(identify("m1", "2026-11-20T10:00:00Z", {"email": "a@example.com", "plan": "pro"},
                       {"Mailjet": False}))
    pipe.feed(identify("m2", "2026-11-20T10:01:00Z", {"email": "a@example.com", "plan": "max"}))
    assert [t.get("plan") for t in upserts(pipe, "mailjet")] == ["max"]
    assert [t.get("plan") for t in upserts(pipe, "mailmodo")] == ["pro", "max"]
