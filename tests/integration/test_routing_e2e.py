"""Every route through running workers on the real broker: a realistic mixed sequence keyed as
real producers would (and some not keyed at all), a worker restart mid-sequence, and two
workers in one group sharing partitions and state."""

from __future__ import annotations

from collections import Counter

from harness import produce, read_topic, wait_for

from streamproc.core.outcome_codec import decode_docs

A, B, C = "Ada@Example.com", "ada@work.example.com", "Cleo@Example.com"


def seg(kind, user, mid, ts, **fields):
    return {"type": kind, "userId": user, "messageId": mid, "timestamp": ts, **fields}


PHASE1 = [  # (input, key, value)
    ("segment", "u1", seg("identify", "u1", "m1", "2026-11-20T10:00:00Z",
                          traits={"email": A, "firstName": "Ada", "plan": "pro"})),
    ("segment", "u1", seg("track", "u1", "m2", "2026-11-20T10:01:00Z", event="Order Completed",
                          properties={"order_id": "o-1", "revenue": 42.5})),
    ("segment", None, seg("track", "ghost", "m3", "2026-11-20T10:02:00Z", event="Viewed")),
    ("segment", "u1", seg("identify", "u1", "m4", "2026-11-20T10:03:00Z", traits={"email": B})),
    ("segment", "u2", seg("identify", "u2", "m5", "2026-11-20T10:04:00Z",
                          traits={"first_name": "Grace"})),
    ("segment", "u1", seg("page", "u1", "m6", "2026-11-20T10:05:00Z", name="Pricing")),
    ("clevertap", "cleo@example.com", {"email": C, "data": {"first_name": "Cleo"},
                                       "clevertap_id": "__ct1", "campaign_id": "cmp-9"}),
    ("segment", b"\x00", b"{not json"),
]

PHASE2 = [
    ("mailmodo", "ada@example.com", {"event": "opened", "email": A, "timestamp": 1763633400,
                                     "campaign_name": "Welcome", "email_subject": "Hi"}),
    ("mailmodo", None, {"event": "clicked", "email": "stranger@example.com",
                        "timestamp": 1763633460, "link_url": "https://example.com/x"}),
    ("mailmodo", "cleo@example.com", {"event": "clicked", "email": C, "timestamp": 1763633520,
                                      "link_url": "https://example.com/y",
                                      "campaign_name": "Promo"}),
    ("mailjet", "ada@example.com", [
        {"event": "sent", "time": 1763633580, "email": A, "MessageID": 19421777835146491},
        {"event": "open", "time": 1763633640, "email": "nobody@example.com",
         "MessageID": 19421777835146493}]),
    ("mailmodo", "x", {"event": "opened", "timestamp": 1763633400}),  # no email: dead letter
    ("clevertap", "x", {"data": {}, "campaign_id": "cmp-9"}),  # no email: dead letter
]


def _produce(stack, items):
    for source, key, value in items:
        produce(stack.bootstrap, stack.topic(source), [(key, value)])


def _sink(stack, dest, n):
    return [r.json() for r in read_topic(stack.bootstrap, stack.topic(f"sink.{dest}"),
                                         min_count=n, timeout=60)]


def _contacts_changelog_has(stack, app_id, keys):
    topic = f"{app_id}-contacts-changelog"

    def check():
        seen = {r.key.decode() for r in read_topic(stack.bootstrap, topic, settle=0.2, timeout=5)}
        return keys <= seen
    return check


def test_mixed_sequence_with_restart(stack):
    w = stack.worker()
    w.wait_ready()
    _produce(stack, PHASE1)
    # identify -> users -> ContactUpdate -> contacts table: wait until the contacts agent stored
    # both contacts (and the CleverTap one), so phase 2 activity finds them identified.
    wait_for(_contacts_changelog_has(stack, w.app_id, {"ada@example.com", "ada@work.example.com",
                                                       "cleo@example.com"}),
             timeout=60, what="contacts in the contacts table")
    assert w.stop() == 0
    w2 = stack.worker(name="w2", data_dir=w.data_dir)  # restart mid-sequence
    w2.wait_ready()
    _produce(stack, PHASE2)

    mailmodo = _sink(stack, "mailmodo", 4)
    got = Counter((r["op"], r["key"]) for r in mailmodo)
    # sink keys are the input's own key (userId for Segment, the email for the rest)
    assert got == Counter({("contact_upsert", "u1"): 2, ("add_event", "u1"): 1,
                           ("trigger_campaign", "cleo@example.com"): 1})
    by_op = {r["op"] + r["payload"]["email"].lower(): r["payload"] for r in mailmodo}
    assert by_op["add_eventada@example.com"]["event_name"] == "Order Completed"
    assert by_op["add_eventada@example.com"]["email"] == A
    assert by_op["contact_upsertada@example.com"]["traits"]["firstName"] == "Ada"
    assert by_op["contact_upsertada@work.example.com"]["email"] == B
    trig = by_op["trigger_campaigncleo@example.com"]
    assert trig["campaign_id"] == "cmp-9" and trig["data"]["first_name"] == "Cleo"

    mailjet = _sink(stack, "mailjet", 2)
    assert sorted(r["payload"]["email"].lower() for r in mailjet) == [
        "ada@example.com", "ada@work.example.com"]

    segment = _sink(stack, "segment", 3)
    msgs = [r["payload"]["message"] for r in segment]
    assert sorted((m["event"], m.get("userId") or "", m.get("anonymousId") or "")
                  for m in msgs) == [
        ("Email Delivered", "u1", ""),
        ("Email Opened", "", "nobody@example.com"),
        ("Email Opened", "u1", ""),
    ]
    opened = next(m for m in msgs if m["event"] == "Email Opened" and m.get("userId"))
    assert opened["integrations"] == {"Mailmodo": False}
    assert opened["context"]["traits"]["email"] == A
    assert opened["properties"]["campaign_name"] == "Welcome"
    delivered = next(m for m in msgs if m["event"] == "Email Delivered")
    assert delivered["properties"]["MessageID"] == "19421777835146491"  # exact, > 2^64

    clevertap = _sink(stack, "clevertap", 1)
    assert [(r["payload"]["evt_name"], r["payload"]["object_id"]) for r in clevertap] == [
        ("MM Email Link Clicked", "__ct1")]

    dlq = [r.json() for r in read_topic(stack.bootstrap, stack.topic("dead_letter"), min_count=3)]
    assert sorted(d["reason"] for d in dlq) == ["missing_email", "missing_email", "not_json"]
    poison = next(d for d in dlq if d["reason"] == "not_json")
    assert poison["original"] == "{not json" and poison["source"]["input"] == "segment"

    # every sink record carries a unique deterministic delivery id
    all_ids = [r["id"] for r in mailmodo + mailjet + segment + clevertap]
    assert len(all_ids) == len(set(all_ids))

    metrics = w2.metrics()  # phase 2 drops were counted by the restarted worker
    assert 'reason="no_clevertap_id",source="mailmodo"} 2.0' in metrics
    assert 'destination="segment",reason="not_identified",source="mailmodo"} 2.0' in metrics


def test_two_workers_share_partitions_and_state(stack):
    w1 = stack.worker(name="w1")
    w2 = stack.worker(name="w2")
    w1.wait_ready()
    w2.wait_ready()
    users = [f"user-{i}" for i in range(24)]
    produce(stack.bootstrap, stack.topic("segment"), [
        (None, seg("identify", u, f"id-{u}", "2026-11-20T10:00:00Z",
                   traits={"email": f"{u}@example.com"})) for u in users])  # unkeyed
    wait_for(_contacts_changelog_has(stack, w1.app_id, {f"{u}@example.com" for u in users}),
             timeout=90, what="all contacts stored")
    produce(stack.bootstrap, stack.topic("segment"), [
        (u, seg("track", u, f"tr-{u}", "2026-11-20T11:00:00Z", event="Signed In"))
        for u in users])
    produce(stack.bootstrap, stack.topic("mailmodo"), [
        (None, {"event": "opened", "email": f"{u.upper()}@example.com", "timestamp": 1763633400})
        for u in users])
    mailmodo = _sink(stack, "mailmodo", 48)
    events = {r["payload"]["email"]: r for r in mailmodo if r["op"] == "add_event"}
    assert len(mailmodo) == 48
    assert set(events) == {f"{u}@example.com" for u in users}
    segment = _sink(stack, "segment", 24)
    assert len(segment) == 24
    assert {m["payload"]["message"]["userId"] for m in segment} == set(users)
    # both workers really worked: each owns some partitions of by-user
    m1, m2 = w1.metrics(), w2.metrics()
    assert "streamproc_routed_total" in m1 and "streamproc_routed_total" in m2


def test_undecodable_internal_records_are_dead_lettered(stack):
    """A record on a repartition topic that is not a streamproc envelope (another producer
    wrote there, or a version mismatch) is dead-lettered with its bytes, never dropped, and
    the state agents carry on."""
    w = stack.worker()
    w.wait_ready()
    produce(stack.bootstrap, stack.topic("by_user"), [("u9", "not an envelope")])
    produce(stack.bootstrap, stack.topic("by_contact"), [("a@example.com", [1, 2])])
    produce(stack.bootstrap, stack.topic("segment"), [("u9", seg(
        "identify", "u9", "m9", "2026-11-20T10:00:00Z", traits={"email": A}))])
    assert len(_sink(stack, "mailmodo", 1)) == 1  # the agents carried on
    dlq = [r.json() for r in read_topic(stack.bootstrap, stack.topic("dead_letter"), min_count=2)]
    assert sorted((d["stage"], d["reason"]) for d in dlq) == [("routing", "bad_envelope")] * 2
    assert sorted(d["original"] for d in dlq) == ['"not an envelope"', "[1,2]"]
    assert 'streamproc_dead_lettered_ingest_total{reason="bad_envelope",source="internal"} 2.0' \
        in w.metrics()
    # and traceable: a dead outcome each, sent with the dead letter (by raw id: no message id)
    dead = [d for r in read_topic(stack.bootstrap, stack.topic("outcomes"), settle=0)
            for d in decode_docs(r.value) if d["k"] == "dead"]
    assert sorted((d["stage"], d["st"], d["r"]) for d in dead) == [
        ("routing", "contacts", "bad_envelope"), ("routing", "users", "bad_envelope")]
    assert sorted(d["m"].rsplit(":", 2)[0] for d in dead) == sorted(
        [stack.topic("by_contact"), stack.topic("by_user")]), dead
