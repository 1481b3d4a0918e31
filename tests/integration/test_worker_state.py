"""The app built by create_app on the real broker: raw topic -> sink topic, and RocksDB table
state that survives a restart, and is recovered from the changelog when the local store is
deleted."""

import shutil

from harness import produce, read_topic


def _identify(user, email, mid, ts="2026-11-20T10:00:00Z"):
    return {"type": "identify", "userId": user, "messageId": mid, "timestamp": ts,
            "traits": {"email": email, "firstName": "Ada"}}


def _track(user, mid, event="Order Completed", ts="2026-11-20T11:00:00Z"):
    return {"type": "track", "userId": user, "messageId": mid, "timestamp": ts, "event": event,
            "properties": {"order_id": mid}}


def _mailmodo(stack, n):
    recs = read_topic(stack.bootstrap, stack.topic("sink.mailmodo"), min_count=n, timeout=60)
    return [r.json() for r in recs]


def test_state_survives_restart_and_store_loss(stack):
    w = stack.worker()
    w.wait_ready()
    produce(stack.bootstrap, stack.topic("segment"), [("user-1", _identify("user-1", "Ada@Example.com", "m-1"))])
    recs = _mailmodo(stack, 1)
    assert [(r["op"], r["key"]) for r in recs] == [("contact_upsert", "user-1")]  # input's key
    assert recs[0]["payload"]["email"] == "Ada@Example.com"

    assert w.stop() == 0  # SIGTERM: a clean shutdown
    w2 = stack.worker(data_dir=w.data_dir)  # same local RocksDB store
    w2.wait_ready()
    produce(stack.bootstrap, stack.topic("segment"), [("user-1", _track("user-1", "t-1"))])
    recs = _mailmodo(stack, 2)
    track = [r for r in recs if r["op"] == "add_event"]
    assert len(track) == 1, recs
    assert track[0]["payload"]["email"] == "Ada@Example.com"
    assert track[0]["payload"]["event_name"] == "Order Completed"

    assert w2.stop() == 0
    shutil.rmtree(w.data_dir)  # the local store is gone: state must come from the changelog
    w3 = stack.worker(name="w3")
    w3.wait_ready()
    produce(stack.bootstrap, stack.topic("segment"), [(None, _track("user-1", "t-2"))])
    recs = _mailmodo(stack, 3)
    tracks = sorted(r["payload"]["properties"]["order_id"] for r in recs if r["op"] == "add_event")
    assert tracks == ["t-1", "t-2"]
    # a track for a user never identified is dropped, not routed
    produce(stack.bootstrap, stack.topic("segment"), [("nobody", _track("nobody", "t-3"))])
    assert len(_mailmodo(stack, 3)) == 3
    assert 'streamproc_dropped_total{destination="mailmodo",reason="unknown_user",source="segment"} 1.0' in w3.metrics()
