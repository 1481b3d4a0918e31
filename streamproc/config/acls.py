"""`streamproc acls`: the least-privilege Kafka ACLs of each role (worker with its ingest
endpoints, topics admin, operator CLI), derived from the topology, app id and topic prefix,
printed as kafka-acls commands, a markdown table or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from streamproc.config.topology import Topology

ROLES = ("worker", "topics", "operator")
DEFAULT_PRINCIPALS = {"worker": "User:streamproc-worker", "topics": "User:streamproc-topics",
                      "operator": "User:streamproc-operator"}
ROLE_TITLES = {"worker": "worker (`streamproc worker`, ingest endpoints included)",
               "topics": "topics admin (`streamproc topics apply|check`)",
               "operator": "operator CLI (`replay`, `dlq list|redrive`, `wait --caught-up`, "
                           "`topics check`)"}


@dataclass(frozen=True)
class Acl:
    """One allow ACL: `principal` may do `operations` on the resource."""

    role: str
    principal: str
    resource_type: str  # TOPIC | GROUP | CLUSTER
    name: str
    pattern: str  # LITERAL | PREFIXED
    operations: tuple[str, ...]
    why: str

    def describe(self) -> str:
        """How error messages name it: `TOPIC 'x' (literal): READ, WRITE`."""
        return (f"{self.resource_type} {self.name!r} ({self.pattern.lower()}): "
                f"{', '.join(self.operations)}")

    def command(self, bootstrap: str = "$BOOTSTRAP", config: str = "admin.properties") -> list[str]:
        """The kafka-acls arguments (after the script name) that grant it."""
        args = ["--bootstrap-server", bootstrap, "--command-config", config, "--add",
                "--allow-principal", self.principal]
        for op in self.operations:
            args += ["--operation", _camel(op)]
        if self.resource_type == "CLUSTER":
            args.append("--cluster")
        else:
            args += [f"--{self.resource_type.lower()}", self.name]
        return args + ["--resource-pattern-type", self.pattern.lower()]


def _camel(op: str) -> str:
    return "".join(w.capitalize() for w in op.split("_"))


def required_acls(topology: Topology, app_id: str,
                  principals: dict[str, str] | None = None) -> list[Acl]:
    """Every ACL each role needs; nothing more. Topics are literal names from the topology;
    the worker's own topics (faust's table changelogs and leader topic, all named
    `<app id>-...`) are one PREFIXED pattern, so a table added later needs no new ACL."""
    who = {**DEFAULT_PRINCIPALS, **(principals or {})}
    out: list[Acl] = []

    def add(role: str, rtype: str, name: str, ops: tuple[str, ...], why: str,
            pattern: str = "LITERAL") -> None:
        out.append(Acl(role, who[role], rtype, name, pattern, ops, why))

    t = topology
    dests = [d for d in t.destinations.values() if d.enabled]
    internal = [s for k, s in t.internal.items() if k != "dead_letter"]
    # worker: consumes inputs, repartition topics and sinks; writes repartition topics, sinks,
    # dead letters; ingest endpoints produce to the inputs; commits as group <app id>.
    add("worker", "GROUP", app_id, ("READ",), "consumer group: join, fetch and commit offsets")
    for s in t.inputs.values():
        add("worker", "TOPIC", s.name, ("READ", "WRITE"),
            f"{s.role}: consumed; ingest endpoints produce to it")
    for s in internal:
        add("worker", "TOPIC", s.name, ("READ", "WRITE"), f"{s.role}: produced and consumed")
    add("worker", "TOPIC", t.internal["dead_letter"].name, ("WRITE",),
        "records that could not be parsed or routed")
    for d in dests:
        add("worker", "TOPIC", d.sink.name, ("READ", "WRITE"), f"sink of {d.slug}: routed, delivered")
        add("worker", "TOPIC", d.dead_letter.name, ("WRITE",), f"failed deliveries to {d.slug}")
    add("worker", "TOPIC", f"{app_id}-", ("CREATE", "DESCRIBE", "READ", "WRITE"),
        "the worker's own topics (table changelogs, faust's leader topic): created at start",
        pattern="PREFIXED")
    # topics admin: creates and checks the topology's topics.
    for s in t.all_topics():
        add("topics", "TOPIC", s.name, ("CREATE", "DESCRIBE"), f"{s.role}: created and checked")
    # operator CLI: replay re-produces inputs and sinks; dlq list/redrive read the dead letters
    # and write back to inputs, internal topics and sinks; wait --caught-up compares the
    # group's committed offsets with every topic's end offsets.
    add("operator", "GROUP", app_id, ("DESCRIBE",), "wait --caught-up: the group's offsets")
    for s in [*t.inputs.values(), *(d.sink for d in dests)]:
        add("operator", "TOPIC", s.name, ("READ", "WRITE"), f"{s.role}: replay / redrive")
    for s in internal:  # redrive writes routing dead letters back, and its outcomes
        add("operator", "TOPIC", s.name, ("READ", "WRITE"), f"{s.role}: dlq redrive / trace")
    for s in [t.internal["dead_letter"], *(d.dead_letter for d in dests)]:
        add("operator", "TOPIC", s.name, ("READ",), f"{s.role}: dlq list / redrive read it")
    add("operator", "TOPIC", f"{app_id}-", ("DESCRIBE", "READ"),
        "the worker's changelogs: replay --dry-run reads the ledger, wait --caught-up its ends",
        pattern="PREFIXED")
    return out


def commands(acls: list[Acl], script: str = "kafka-acls.sh") -> str:
    lines = []
    for role in ROLES:
        mine = [a for a in acls if a.role == role]
        if mine:
            lines.append(f"# {ROLE_TITLES[role]}: {mine[0].principal}")
            lines += [" ".join([script, *a.command()]) for a in mine]
    return "\n".join(lines)


def table(acls: list[Acl]) -> str:
    lines = ["| Role | Principal | Resource | Name | Pattern | Operations | Why |",
             "|---|---|---|---|---|---|---|"]
    for a in acls:
        lines.append(f"| {a.role} | `{a.principal}` | {a.resource_type} | `{a.name}` | "
                     f"{a.pattern.lower()} | {', '.join(a.operations)} | {a.why} |")
    return "\n".join(lines)


def as_json(acls: list[Acl]) -> str:
    return json.dumps([asdict(a) for a in acls], indent=2)


def run_acls_command(topology: Topology, app_id: str, args) -> int:
    principals = {r: p for r in ROLES if (p := getattr(args, "principal_" + r, None))}
    acls = required_acls(topology, app_id, principals)
    print({"table": table, "commands": commands, "json": as_json}[args.format](acls))
    return 0
