"""streamproc on a locked-down cluster: the secured local broker (SASL_SSL, SCRAM-SHA-512,
StandardAuthorizer denying what no ACL allows). Each role connects as its own user holding
exactly the ACLs `streamproc acls` prints, and every verb works: topics apply/check, the worker
(ingest endpoint, routing, delivery, dead letters), wait --caught-up, dlq list/redrive, replay."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import httpx
import orjson

from streamproc.config.acls import required_acls
from streamproc.dev.sandbox import SandboxServer, sandbox_env

from acl_admin import grant
from harness import ROOT, WorkerProcess, produce, read_topic, topology_for, unique_prefix, wait_for

PRINCIPALS = {"worker": "User:worker", "topics": "User:topics", "operator": "User:operator"}
WRITE_KEY = "wk-secure-1"


def env_for(kafka, prefix: str, user: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPROC_")}
    env.update(kafka.secure.env(user), STREAMPROC_KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap,
               STREAMPROC_TOPIC_PREFIX=prefix, STREAMPROC_TOPICS_FILE=str(ROOT / "topics.yaml"),
               STREAMPROC_APP_ID=f"{prefix}app")
    return env


def cli(kafka, prefix: str, user: str, *args: str, timeout: float = 120,
        ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamproc", *args],
                          env=env_for(kafka, prefix, user), capture_output=True, text=True,
                          timeout=timeout, cwd=str(ROOT))


def ok(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 0, f"exit {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    return res.stdout


def secure_worker(kafka, prefix: str, sandbox, user: str = "worker", **env: str) -> WorkerProcess:
    extra = {**sandbox_env(sandbox.base_urls), **kafka.secure.env(user),
             "STREAMPROC_INGEST_SEGMENT_WRITE_KEYS": WRITE_KEY, **env}
    return WorkerProcess(kafka.bootstrap, prefix, env_extra=extra, name=user).start()


def identify(user, email, mid):
    return {"type": "identify", "userId": user, "messageId": mid,
            "timestamp": "2026-11-20T10:00:00Z", "traits": {"email": email}}


def track(user, mid):
    return {"type": "track", "userId": user, "messageId": mid, "timestamp": "2026-11-20T11:00:00Z",
            "event": "Order Completed", "properties": {"order_id": mid}}


def test_a_user_without_acls_is_refused_and_told_why(secure_kafka):
    """The broker really is locked down: `streamproc topics apply` as a user without ACLs
    fails, naming the permission (CREATE on TOPIC ...) it lacks."""
    prefix = unique_prefix()
    res = cli(secure_kafka, prefix, "nobody", "topics", "apply", timeout=90)
    assert res.returncode != 0
    assert "CREATE" in res.stderr + res.stdout and "TOPIC" in res.stderr + res.stdout, res


def test_every_role_works_with_exactly_the_acls_it_is_given(secure_kafka):
    kafka = secure_kafka
    prefix = unique_prefix()
    topology = topology_for(prefix)
    app_id = f"{prefix}app"
    grant(kafka.client_kwargs(), required_acls(topology, app_id, PRINCIPALS))
    admin = kafka.secure.client_kwargs()

    out = ok(cli(kafka, prefix, "topics", "topics", "apply"))
    assert out.count("created") == len(topology.all_topics()), out
    ok(cli(kafka, prefix, "topics", "topics", "check"))
    ok(cli(kafka, prefix, "operator", "topics", "check"))

    with SandboxServer() as sandbox:
        w = secure_worker(kafka, prefix, sandbox)
        try:
            w.wait_ready(timeout=120)
            # the ingest endpoint produces (as the worker's user) to the raw topic
            def post() -> httpx.Response:
                return httpx.post(w.url + "/v1/identify", timeout=30, auth=(WRITE_KEY, ""),
                                  content=orjson.dumps(identify("u-1", "ada@example.com", "m-1")),
                                  headers={"Content-Type": "application/json"})

            # 503 not_ready while the output producer is still connecting: a client retries
            r = wait_for(lambda: (r := post()).status_code != 503 and r, timeout=60,
                         what="the ingest endpoint past 503 not_ready")
            assert r.status_code == 200, r.text
            produce(kafka.bootstrap, topology.inputs["segment"].name,
                    [("u-1", track("u-1", "t-1")), ("bad-1", b"not json")], **admin)
            mm = sandbox["mailmodo"]

            def events() -> Counter:
                return Counter(r.body["event_properties"].get("order_id")
                               for r in mm.requests("/addEvent", status=200))

            wait_for(lambda: events()["t-1"] == 1, timeout=90, what="addEvent over SASL_SSL")
            dead = read_topic(kafka.bootstrap, topology.internal["dead_letter"].name,
                              min_count=1, timeout=60, **admin)
            assert len(dead) == 1

            ok(cli(kafka, prefix, "operator", "wait", "--caught-up", "--timeout", "120"))
            listed = ok(cli(kafka, prefix, "operator", "dlq", "list", "--json"))
            assert '"not_json"' in listed, listed
            out = ok(cli(kafka, prefix, "operator", "dlq", "redrive", "--destination", "ingest"))
            assert "re-driven 1 record(s)" in out, out
            out = ok(cli(kafka, prefix, "operator", "replay", "segment", "--from-offset", "0"))
            assert "re-produced" in out, out
            ok(cli(kafka, prefix, "operator", "replay", "sink.mailmodo", "--from-offset", "0",
                   "--dry-run"))
            # the re-driven and replayed records went through the worker again: it is
            # still routing (a second dead letter of the redriven bad record) and up
            wait_for(lambda: len(read_topic(kafka.bootstrap, topology.internal["dead_letter"].name,
                                            settle=0.3, **admin)) >= 2,
                     timeout=90, what="the re-driven record dead-lettered again")
            ok(cli(kafka, prefix, "operator", "wait", "--caught-up", "--timeout", "120"))
            assert events()["t-1"] == 1  # the replay was skipped by the ledger: no re-send
        finally:
            w.stop_or_kill()
