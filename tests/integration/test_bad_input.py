"""Bad input at scale (hypothesis, seeded and bounded): malformed, truncated, deeply nested,
oversized, wrongly typed and non-UTF-8 records on every raw topic, mixed with valid ones, and
hostile bodies for every ingest endpoint (wrong auth, oversized, not JSON). One running worker
must stay up and ready, account for every record (parsed or dead-lettered with a reason: the
books balance on its metrics counters), and answer every bad request with the right 4xx."""

from __future__ import annotations

import base64
import uuid
from collections import Counter

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from streamproc.dev.samples import load_samples

from harness import WorkerProcess, counter_value, produce, read_topic, sandboxed_worker, wait_for

WRITE_KEY = "wk-bad-input"
TOKEN = "hook-" + uuid.uuid4().hex
MAX_BODY = 64 * 1024
SOURCES = ("segment", "mailmodo", "mailjet", "clevertap")
# the bundled samples as one-event records: a Mailjet webhook batch (a JSON array) is split
# into one-element arrays, so each record is one event (or one dead letter) for the books
VALID = {s: [{"value": v} for i in load_samples() if i["input"] == s and "value" in i
             for v in (i["value"] if isinstance(i["value"], list) else [i["value"]])
             if isinstance(v, dict)] for s in SOURCES}
WRAP = {"mailjet": lambda v: [v]}
# kinds that can never be an event: each must be dead-lettered with a reason
MUST_DEAD = {"not_json", "truncated", "non_utf8", "deep", "oversized", "not_object"}
KINDS = Counter()  # kind -> how many generated (the README figures)
STATUSES = Counter()  # (endpoint kind, status) -> how many


def _deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False,
                                                                      allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


def _wrong_types(source: str) -> st.SearchStrategy[dict | list]:
    """A valid sample of `source` with one of its fields replaced by a value of another type."""
    def mutate(args):
        sample, field_ix, value = args
        body = dict(sample["value"])
        key = sorted(body)[field_ix % len(body)]
        body[key] = value
        return WRAP.get(source, lambda v: v)(body)
    return st.tuples(st.sampled_from(VALID[source]), st.integers(0, 50), json_values).map(mutate)


def raw_record(source: str) -> st.SearchStrategy[tuple[str, bytes]]:
    """(kind, value bytes) of one record for `source`'s raw topic."""
    wrap = WRAP.get(source, lambda v: v)
    valid_bytes = st.sampled_from([orjson.dumps(wrap(i["value"])) for i in VALID[source]])
    return st.one_of(
        valid_bytes.map(lambda b: ("valid", b)),
        st.binary(min_size=1, max_size=200).filter(lambda b: not _is_json(b)).map(
            lambda b: ("not_json", b)),
        st.tuples(valid_bytes, st.integers(1, 1000)).map(
            lambda a: ("truncated", a[0][:max(1, len(a[0]) - 1 - a[1] % (len(a[0]) - 1))])),
        st.tuples(valid_bytes, st.binary(min_size=1, max_size=8)).map(
            lambda a: ("non_utf8", a[0][:-1] + b"\xff\xfe" + a[1] + b"}")),
        st.integers(1500, 5000).map(lambda d: ("deep", _deep(d))),
        st.just(("oversized", b'{"pad":"' + b"x" * 950_000 + b'"}')),
        json_values.filter(lambda v: not isinstance(v, dict)).map(
            lambda v: ("not_object", orjson.dumps(v))),
        _wrong_types(source).map(lambda v: ("wrong_types", orjson.dumps(v))),
    )


def units(source: str, value: bytes) -> int:
    """How many inputs a record holds: a Mailjet webhook array is one per item (each an event
    or a dead letter), every other record one."""
    if source == "mailjet" and _is_json(value):
        body = orjson.loads(value)
        if isinstance(body, list) and body:
            return len(body)
    return 1


def _is_json(b: bytes) -> bool:
    try:
        orjson.loads(b)
        return True
    except orjson.JSONDecodeError:
        return False


@pytest.fixture(scope="module")
def running(kafka_bootstrap):
    env = {"STREAMPROC_INGEST_SEGMENT_WRITE_KEYS": WRITE_KEY,
           "STREAMPROC_INGEST_WEBHOOK_TOKEN": TOKEN,
           "STREAMPROC_INGEST_MAX_BODY_BYTES": str(MAX_BODY)}
    try:
        with sandboxed_worker(kafka_bootstrap, "bad-input", env, ready_timeout=120) as (
                _, topology, w):
            yield w, topology
            assert w.proc.poll() is None, w.log_tail()
    finally:
        print(f"\nbad-input figures: raw records by kind {dict(sorted(KINDS.items()))}; "
              f"requests by (kind, status) {dict(sorted(STATUSES.items()))}")


def books(w: WorkerProcess, source: str) -> tuple[float, float]:
    text = w.metrics()
    return (counter_value(text, "streamproc_events_in_total", source=source),
            counter_value(text, "streamproc_dead_lettered_ingest_total", source=source))


# no shrinking: each example runs against the live worker (a failure shows its whole batch)
RAW = settings(max_examples=4, deadline=None, database=None, derandomize=True,
               suppress_health_check=list(HealthCheck),
               phases=[Phase.explicit, Phase.reuse, Phase.generate])


def _raw_test(source: str):
    @seed(19)
    @RAW
    @given(records=st.lists(raw_record(source), min_size=20, max_size=20))
    def run(running, records):
        w, topology = running
        before_in, before_dead = books(w, source)
        dead_topic = topology.internal["dead_letter"].name
        dead_before = len(read_topic(w.bootstrap, dead_topic, settle=0.2))
        produce(w.bootstrap, topology.inputs[source].name,
                [(f"k{i}", value) for i, (_, value) in enumerate(records)])
        KINDS.update(kind for kind, _ in records)
        must_dead = sum(1 for kind, _ in records if kind in MUST_DEAD)
        valid = sum(1 for kind, _ in records if kind == "valid")
        # books: every input is either an event or a dead letter with a reason
        n = sum(units(source, value) for _, value in records)
        wait_for(lambda: sum(books(w, source)) - before_in - before_dead >= n,
                 timeout=120, what=f"{n} {source} inputs accounted for")
        got_in, got_dead = books(w, source)
        assert (got_in - before_in) + (got_dead - before_dead) == n
        assert got_dead - before_dead >= must_dead
        assert got_in - before_in >= valid
        dead = read_topic(w.bootstrap, dead_topic, settle=0.3,
                          min_count=dead_before + int(got_dead - before_dead))
        assert len(dead) == dead_before + got_dead - before_dead
        assert all(d.json()["reason"] for d in dead[dead_before:])
        assert httpx.get(w.url + "/ready", timeout=10).status_code == 200

    return run


for _source in SOURCES:
    globals()[f"test_{_source}_raw_topic_survives_bad_records_and_the_books_balance"] = \
        _raw_test(_source)


ENDPOINTS = [("/v1/track", "segment"), ("/v1/identify", "segment"), ("/v1/batch", "segment"),
             ("/webhooks/mailmodo", "hook"), ("/webhooks/mailjet", "hook"),
             ("/webhooks/clevertap/c1", "hook")]


def _auth(kind: str) -> str:
    if kind == "segment":
        return "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    return f"Bearer {TOKEN}"


bodies = st.one_of(
    st.tuples(st.just("wrong_auth"), json_values.map(orjson.dumps)),
    st.tuples(st.just("oversized"), st.integers(MAX_BODY + 1, 3 * MAX_BODY).map(
        lambda n: b'{"pad":"' + b"x" * n + b'"}')),
    st.tuples(st.just("not_json"), st.binary(max_size=100).filter(lambda b: not _is_json(b))),
    st.tuples(st.just("non_utf8"), st.binary(min_size=1, max_size=20).map(
        lambda b: b'{"event":"' + b"\xff" + b + b'"}')),
    st.tuples(st.just("deep"), st.integers(1500, 3000).map(_deep)),
    st.tuples(st.just("wrong_types"), json_values.map(orjson.dumps)),
)
EXPECTED = {"wrong_auth": {401}, "oversized": {413}, "not_json": {400}, "non_utf8": {400},
            "deep": {400}, "wrong_types": {200, 400}}


@seed(19)
@settings(max_examples=120, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
@given(endpoint=st.sampled_from(ENDPOINTS), body=bodies)
def test_ingest_endpoints_answer_bad_requests_with_the_right_4xx(running, endpoint, body):
    w, _ = running
    (path, auth_kind), (kind, content) = endpoint, body
    auth = "Bearer wrong" if kind == "wrong_auth" else _auth(auth_kind)
    r = httpx.post(w.url + path, content=content, timeout=30,
                   headers={"Content-Type": "application/json", "Authorization": auth})
    STATUSES[(kind, r.status_code)] += 1
    assert r.status_code in EXPECTED[kind], (path, kind, content[:200], r.status_code, r.text)
    if r.status_code >= 400:
        assert r.json()["error"], r.text
    assert w.proc.poll() is None, w.log_tail()
