"""Reads and validates topics.yaml: topic names, partitions, replication, retention and
cleanup per topic, and the destinations (enabled, batch size, sink and dead-letter topics).
Errors name the file, the line and the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from streamproc.core.errors import ConfigError
from streamproc.core.records import DESTINATIONS

INPUTS = ("segment", "mailmodo", "mailjet", "clevertap")
INTERNAL = ("by_user", "by_contact", "dead_letter")
OPTIONAL_INTERNAL = ("outcomes",)  # added with its defaults when topics.yaml omits it
DEFAULT_OUTCOMES = {"name": "streamproc.outcomes", "retention_ms": 7 * 24 * 3600 * 1000}
TOPIC_KEYS = {"name", "partitions", "replication_factor", "retention_ms", "cleanup_policy", "config"}
DEFAULT_KEYS = TOPIC_KEYS - {"name"}
DEST_KEYS = {"enabled", "batch_size", "sink", "dead_letter"}
CLEANUP = ("delete", "compact", "compact,delete")


@dataclass(frozen=True)
class TopicSpec:
    role: str  # e.g. "input.segment", "internal.by_user", "sink.mailmodo", "dlq.mailmodo"
    name: str
    partitions: int
    replication_factor: int
    retention_ms: int | None
    cleanup_policy: str
    config: dict[str, str] = field(default_factory=dict)

    def kafka_config(self) -> dict[str, str]:
        conf = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            conf["retention.ms"] = str(self.retention_ms)
        conf.update(self.config)
        return conf


@dataclass(frozen=True)
class DestinationSpec:
    slug: str
    enabled: bool
    batch_size: int
    sink: TopicSpec
    dead_letter: TopicSpec


@dataclass(frozen=True)
class Topology:
    inputs: dict[str, TopicSpec]
    internal: dict[str, TopicSpec]
    destinations: dict[str, DestinationSpec]
    path: str = "topics.yaml"

    @property
    def enabled(self) -> list[str]:
        return [d for d, spec in self.destinations.items() if spec.enabled]

    def all_topics(self) -> list[TopicSpec]:
        out = list(self.inputs.values()) + list(self.internal.values())
        for d in self.destinations.values():
            out += [d.sink, d.dead_letter]
        return out

    def by_name(self, name: str) -> TopicSpec | None:
        return next((t for t in self.all_topics() if t.name == name), None)

    def with_prefix(self, prefix: str) -> Topology:
        """The same topology with every topic name prefixed (tests isolate themselves so)."""

        def p(t: TopicSpec) -> TopicSpec:
            return TopicSpec(t.role, prefix + t.name, t.partitions, t.replication_factor,
                             t.retention_ms, t.cleanup_policy, dict(t.config))

        return Topology(
            inputs={k: p(v) for k, v in self.inputs.items()},
            internal={k: p(v) for k, v in self.internal.items()},
            destinations={k: DestinationSpec(d.slug, d.enabled, d.batch_size, p(d.sink),
                                             p(d.dead_letter))
                          for k, d in self.destinations.items()},
            path=self.path,
        )


class _Reader:
    """Walks the composed YAML node tree so every error can name its line."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, node: yaml.Node | None, msg: str) -> ConfigError:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        return ConfigError(f"{self.path}{line}: {msg}")

    def mapping(self, node: yaml.Node, where: str, allowed: set[str] | None = None,
                ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{where} must be a mapping")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for k, v in node.value:
            key = k.value
            if allowed is not None and key not in allowed:
                raise self.fail(k, f"unknown key {key!r} in {where} "
                                   f"(allowed: {', '.join(sorted(allowed))})")
            if key in out:
                raise self.fail(k, f"duplicate key {key!r} in {where}")
            out[key] = (k, v)
        return out

    def scalar(self, node: yaml.Node, where: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{where} must be a single value")
        return yaml.safe_load(yaml.serialize(node))

    def int(self, node: yaml.Node, where: str, minimum: int = 1) -> int:
        v = self.scalar(node, where)
        if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
            raise self.fail(node, f"{where} must be an integer >= {minimum}, got {v!r}")
        return v

    def bool(self, node: yaml.Node, where: str) -> bool:
        v = self.scalar(node, where)
        if not isinstance(v, bool):
            raise self.fail(node, f"{where} must be true or false, got {v!r}")
        return v

    def topic(self, node: yaml.Node, where: str, role: str, defaults: dict[str, Any]) -> TopicSpec:
        m = self.mapping(node, where, TOPIC_KEYS)
        if "name" not in m:
            raise self.fail(node, f"{where} needs a 'name'")
        name = self.scalar(m["name"][1], f"{where}.name")
        if not isinstance(name, str) or not name or len(name) > 249 or any(
                c not in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
                for c in name):
            raise self.fail(m["name"][1], f"{where}.name {name!r} is not a valid Kafka topic name")
        vals = dict(defaults)
        for key in DEFAULT_KEYS & m.keys():
            vals[key] = self.value(key, m[key][1], f"{where}.{key}")
        return TopicSpec(role=role, name=name, partitions=vals.get("partitions", 6),
                         replication_factor=vals.get("replication_factor", 1),
                         retention_ms=vals.get("retention_ms"),
                         cleanup_policy=vals.get("cleanup_policy", "delete"),
                         config=dict(vals.get("config") or {}))

    def value(self, key: str, node: yaml.Node, where: str) -> Any:
        if key in ("partitions", "replication_factor"):
            return self.int(node, where)
        if key == "retention_ms":
            return self.int(node, where, minimum=-1)
        if key == "cleanup_policy":
            v = self.scalar(node, where)
            if v not in CLEANUP:
                raise self.fail(node, f"{where} must be one of {', '.join(CLEANUP)}, got {v!r}")
            return v
        if key == "config":
            m = self.mapping(node, where)
            return {k: str(self.scalar(v, f"{where}.{k}")) for k, (_, v) in m.items()}
        raise self.fail(node, f"unknown key {key!r}")


def load_topology(path: str | Path = "topics.yaml") -> Topology:
    path = str(path)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the topology file ({e.strerror})") from None
    r = _Reader(path)
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if root is None:
        raise ConfigError(f"{path}: the file is empty")
    top = r.mapping(root, "the top level", {"defaults", "inputs", "internal", "destinations"})
    defaults: dict[str, Any] = {}
    if "defaults" in top:
        for key, (_, v) in r.mapping(top["defaults"][1], "defaults", DEFAULT_KEYS).items():
            defaults[key] = r.value(key, v, f"defaults.{key}")
    for section in ("inputs", "internal", "destinations"):
        if section not in top:
            raise r.fail(root, f"missing section {section!r}")
    inputs = {}
    for key, (_, v) in r.mapping(top["inputs"][1], "inputs", set(INPUTS)).items():
        inputs[key] = r.topic(v, f"inputs.{key}", f"input.{key}", defaults)
    internal = {}
    for key, (_, v) in r.mapping(top["internal"][1], "internal",
                                 set(INTERNAL + OPTIONAL_INTERNAL)).items():
        internal[key] = r.topic(v, f"internal.{key}", f"internal.{key}", defaults)
    if "outcomes" not in internal:  # streamproc trace's topic (issue 15), 7 days by default
        internal["outcomes"] = TopicSpec(
            "internal.outcomes", DEFAULT_OUTCOMES["name"], defaults.get("partitions", 6),
            defaults.get("replication_factor", 1), DEFAULT_OUTCOMES["retention_ms"],
            "delete", dict(defaults.get("config") or {}))
    for needed, have, where in ((INPUTS, inputs, "inputs"), (INTERNAL, internal, "internal")):
        missing = [n for n in needed if n not in have]
        if missing:
            raise r.fail(top[where][1], f"{where} is missing {', '.join(missing)}")
    dests = {}
    for slug, (_, v) in r.mapping(top["destinations"][1], "destinations", set(DESTINATIONS)).items():
        m = r.mapping(v, f"destinations.{slug}", DEST_KEYS)
        for k in ("sink", "dead_letter"):
            if k not in m:
                raise r.fail(v, f"destinations.{slug} needs {k!r}")
        dests[slug] = DestinationSpec(
            slug=slug,
            enabled=r.bool(m["enabled"][1], f"destinations.{slug}.enabled") if "enabled" in m else True,
            batch_size=r.int(m["batch_size"][1], f"destinations.{slug}.batch_size")
            if "batch_size" in m else 100,
            sink=r.topic(m["sink"][1], f"destinations.{slug}.sink", f"sink.{slug}", defaults),
            dead_letter=r.topic(m["dead_letter"][1], f"destinations.{slug}.dead_letter",
                                f"dlq.{slug}", defaults),
        )
    topo = Topology(inputs=inputs, internal=internal, destinations=dests, path=path)
    names: dict[str, str] = {}
    for t in topo.all_topics():
        if t.name in names:
            raise ConfigError(f"{path}: topic name {t.name!r} is used twice "
                              f"({names[t.name]} and {t.role})")
        names[t.name] = t.role
    return topo
