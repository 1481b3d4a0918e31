"""Least privilege, the other way round: with each ACL `streamproc acls` prints removed in turn
(the rest granted), the role's command fails at start or at use with a message naming the
missing permission (resource type, name, operation), never silently. One secured broker for
all cases, one short-lived process per case, nothing in parallel, finite deadlines."""

from __future__ import annotations

import asyncio
import re

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streamproc.config.acls import Acl, required_acls
from streamproc.config.topics import reconcile
from streamproc.dev.sandbox import SandboxServer

from acl_admin import grant
from harness import produce, topology_for, unique_prefix, wait_for
from test_secure_cluster import PRINCIPALS, cli, identify, secure_worker, track

DEFAULT = topology_for("")  # the shipped topology, for the case list (names without a prefix)


def case_ids(role: str) -> list[str]:
    return [f"{a.resource_type}:{a.name}:{'+'.join(a.operations)}"
            for a in required_acls(DEFAULT, "APP", PRINCIPALS) if a.role == role]


class Case:
    """A fresh prefix and app id, the topology's topics created by the super user, and every
    ACL of `role` granted except the `index`-th one (returned as `missing`)."""

    def __init__(self, kafka, role: str, index: int, *, keep_ops: tuple[str, ...] = ()) -> None:
        self.kafka = kafka
        self.prefix = unique_prefix()
        self.topology = topology_for(self.prefix)
        self.app_id = f"{self.prefix}app"
        acls = [a for a in required_acls(self.topology, self.app_id, PRINCIPALS) if a.role == role]
        self.missing: Acl = acls[index]
        rest = [a for a in acls if a is not self.missing]
        if keep_ops:  # remove only some operations of the ACL
            rest.append(Acl(role, self.missing.principal, self.missing.resource_type,
                            self.missing.name, self.missing.pattern, keep_ops, ""))
        report = asyncio.run(reconcile(self.topology, kafka.client_kwargs(), create=True))
        assert report.healthy, report.lines()
        grant(kafka.client_kwargs(), rest)

    def assert_named(self, text: str, ops: tuple[str, ...] | None = None) -> None:
        m = self.missing
        # a prefixed ACL: the message names the topic under the prefix that was refused
        what = "the CLUSTER" if m.resource_type == "CLUSTER" else (
            f"{m.resource_type} '{m.name}" + ("'" if m.pattern == "LITERAL" else ""))
        assert "Kafka denied User:" in text and what in text, (m, text[-3000:])
        ops = (ops or m.operations) + (("DESCRIBE",) if m.resource_type == "TOPIC" else ())
        named = [op for op in ops if f" {op} on {what}" in text
                 or re.search(rf"\b{op}\b[^\n]* on {re.escape(what)}", text)]
        assert named, (m, text[-3000:])


@pytest.mark.parametrize("index", range(len(case_ids("worker"))), ids=case_ids("worker"))
def test_worker_without_one_acl_fails_at_start_naming_it(secure_kafka, index):
    case = Case(secure_kafka, "worker", index)
    with SandboxServer() as sandbox:
        w = secure_worker(secure_kafka, case.prefix, sandbox)
        try:
            code = w.proc.wait(timeout=120)  # finite: a hang fails the test
        finally:
            w.stop_or_kill()
    assert code == 2, w.log_tail()
    case.assert_named(w.log_path.read_text(errors="replace"))


def test_worker_without_write_on_a_sink_names_it_at_use(secure_kafka):
    """READ kept, WRITE removed: nothing at start can tell (a write check would write), so the
    first routed record's produce is refused, logged naming TOPIC + WRITE at every retry, and
    the input is not committed past (never a silent drop)."""
    index = case_ids("worker").index("TOPIC:sink.mailmodo:READ+WRITE")
    case = Case(secure_kafka, "worker", index, keep_ops=("READ",))
    with SandboxServer() as sandbox:
        w = secure_worker(secure_kafka, case.prefix, sandbox)
        try:
            w.wait_ready(timeout=120)
            produce(secure_kafka.bootstrap, case.topology.inputs["segment"].name,
                    [("u-1", identify("u-1", "ada@example.com", "m-1")),
                     ("u-1", track("u-1", "t-1"))], **secure_kafka.secure.client_kwargs())
            wait_for(lambda: "WRITE on TOPIC" in w.log_path.read_text(errors="replace"),
                     timeout=90, what="the denied write named in the log")
            case.assert_named(w.log_path.read_text(errors="replace"), ("WRITE",))
            assert not sandbox["mailmodo"].requests("/addEvent", status=200)
            assert w.proc.poll() is None  # up, retrying: an admin's grant heals it
        finally:
            w.stop_or_kill()


@pytest.mark.parametrize("index", range(len(case_ids("topics"))), ids=case_ids("topics"))
def test_topics_apply_without_one_acl_fails_naming_it(secure_kafka, index):
    case = Case.__new__(Case)  # the topics are what this role creates: none made beforehand
    case.kafka, case.prefix = secure_kafka, unique_prefix()
    case.topology, case.app_id = topology_for(case.prefix), f"{case.prefix}app"
    acls = [a for a in required_acls(case.topology, case.app_id, PRINCIPALS) if a.role == "topics"]
    case.missing = acls[index]
    grant(secure_kafka.client_kwargs(), [a for a in acls if a is not case.missing])
    res = cli(secure_kafka, case.prefix, "topics", "topics", "apply", timeout=120)
    assert res.returncode == 1
    case.assert_named(res.stdout + res.stderr, ("CREATE",))


def _operator_verb(case: Case) -> tuple[str, ...]:
    """The operator command that uses the missing ACL's resource."""
    t, m = case.topology, case.missing
    if m.resource_type == "GROUP":
        return ("wait", "--caught-up", "--timeout", "10")
    if m.pattern == "PREFIXED":  # the ledger changelog, read by a sink replay's dry run
        return ("replay", "sink.mailmodo", "--from-offset", "0", "--dry-run")
    if m.name == t.internal.get("outcomes", m).name:  # redrive records an outcome per record
        return ("dlq", "redrive", "--destination", "ingest")
    for source, spec in t.inputs.items():
        if spec.name == m.name:
            return ("replay", source, "--from-offset", "0")
    for slug, d in t.destinations.items():
        if d.sink.name == m.name:
            return ("replay", f"sink.{slug}", "--from-offset", "0")
    if m.operations == ("READ",):  # a dead-letter topic
        return ("dlq", "list")
    return ("wait", "--caught-up", "--timeout", "10")  # a repartition topic


@pytest.mark.parametrize("index", range(len(case_ids("operator"))), ids=case_ids("operator"))
def test_operator_command_without_one_acl_fails_naming_it(secure_kafka, index):
    case = Case(secure_kafka, "operator", index)
    verb = _operator_verb(case)
    admin = secure_kafka.secure.client_kwargs()
    # what a worker would have left: a record on each input and sink, a dead letter, a ledger
    # changelog
    produce(secure_kafka.bootstrap, case.topology.internal["dead_letter"].name, [("k", {
        "stage": "ingest", "reason": "not_json", "original": "x", "source": {
            "topic": case.topology.inputs["segment"].name, "partition": 0, "offset": 0,
            "input": "segment", "key": "k"}})], **admin)
    for spec in [*case.topology.inputs.values(), case.topology.destinations["mailmodo"].sink]:
        produce(secure_kafka.bootstrap, spec.name, [("k", {"x": 1})], **admin)

    async def changelog() -> None:
        a = AIOKafkaAdminClient(bootstrap_servers=secure_kafka.bootstrap, **admin)
        await a.start()
        try:
            await a.create_topics([NewTopic(f"{case.app_id}-ledger-mailmodo-changelog", 6, 1)])
        finally:
            await a.close()

    asyncio.run(changelog())
    res = cli(secure_kafka, case.prefix, "operator", *verb, timeout=120)
    assert res.returncode != 0, (case.missing, res.stdout, res.stderr)
    case.assert_named(res.stdout + res.stderr)
