"""`streamproc acls`: the ACLs come from the topology (names, prefix, enabled destinations),
the app id and the principals, in the three output formats."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from streamproc.__main__ import main
from streamproc.config.acls import as_json, commands, required_acls, table
from streamproc.config.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]


def topo(prefix: str = ""):
    t = load_topology(ROOT / "topics.yaml")
    return t.with_prefix(prefix) if prefix else t


def grants(acls, role):
    return {(a.resource_type, a.name, a.pattern): set(a.operations) for a in acls if a.role == role}


def test_every_topology_topic_is_covered_for_each_role_and_nothing_else():
    t = topo("env1.")
    acls = required_acls(t, "app1")
    names = {s.name for s in t.all_topics()}
    assert {n for (_, n, _) in grants(acls, "topics")} == names
    assert all(ops == {"CREATE", "DESCRIBE"} for ops in grants(acls, "topics").values())
    worker = grants(acls, "worker")
    for s in t.inputs.values():
        assert worker[("TOPIC", s.name, "LITERAL")] == {"READ", "WRITE"}
    assert worker[("TOPIC", t.internal["dead_letter"].name, "LITERAL")] == {"WRITE"}
    assert worker[("GROUP", "app1", "LITERAL")] == {"READ"}
    assert worker[("TOPIC", "app1-", "PREFIXED")] == {"CREATE", "DESCRIBE", "READ", "WRITE"}
    worker_topics = {n for (r, n, p) in worker if r == "TOPIC" and p == "LITERAL"}
    assert worker_topics == names  # every topic of an all-enabled topology, literal names
    assert all(n.startswith("env1.") for n in worker_topics)
    operator = grants(acls, "operator")
    assert operator[("GROUP", "app1", "LITERAL")] == {"DESCRIBE"}
    assert all("CREATE" not in ops for ops in operator.values())
    for d in t.destinations.values():
        assert operator[("TOPIC", d.dead_letter.name, "LITERAL")] == {"READ"}
        assert operator[("TOPIC", d.sink.name, "LITERAL")] == {"READ", "WRITE"}


def test_a_disabled_destination_needs_no_worker_or_operator_acl():
    t = topo()
    dests = dict(t.destinations)
    dests["mailjet"] = replace(dests["mailjet"], enabled=False)
    t = replace(t, destinations=dests)
    acls = required_acls(t, "streamproc")
    for role in ("worker", "operator"):
        assert not [a for a in acls if a.role == role and a.name in ("sink.mailjet", "dlq.mailjet")]
    assert [a for a in acls if a.role == "topics" and a.name == "sink.mailjet"]  # still created


def test_formats_commands_table_json():
    acls = required_acls(topo(), "streamproc", {"worker": "User:w1"})
    cmds = commands(acls).splitlines()
    assert cmds[0].startswith("# worker") and "User:w1" in cmds[0]
    assert ("kafka-acls.sh --bootstrap-server $BOOTSTRAP --command-config admin.properties --add "
            "--allow-principal User:w1 --operation Read --group streamproc "
            "--resource-pattern-type literal") in cmds
    assert any("--operation Create --operation Describe --operation Read --operation Write "
               "--topic streamproc- --resource-pattern-type prefixed" in c for c in cmds)
    rows = table(acls).splitlines()
    assert rows[0].startswith("| Role | Principal | Resource |") and len(rows) == len(acls) + 2
    assert json.loads(as_json(acls))[0]["principal"] == "User:w1"


def test_cli_uses_app_id_and_prefix(monkeypatch, capsys):
    monkeypatch.setenv("STREAMPROC_APP_ID", "orders")
    monkeypatch.setenv("STREAMPROC_TOPIC_PREFIX", "prod.")
    monkeypatch.setenv("STREAMPROC_TOPICS_FILE", str(ROOT / "topics.yaml"))
    assert main(["acls", "--format", "json", "--principal-operator", "User:ops"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"GROUP", "TOPIC"} == {a["resource_type"] for a in doc}
    assert any(a["name"] == "orders-" and a["pattern"] == "PREFIXED" for a in doc)
    assert any(a["name"] == "prod.segment.raw" for a in doc)
    assert {a["principal"] for a in doc if a["role"] == "operator"} == {"User:ops"}
