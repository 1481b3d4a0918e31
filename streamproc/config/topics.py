"""`streamproc topics apply|check`: creates the topics topics.yaml lists that are missing and
reports existing ones whose partition count (or replication) differs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streamproc.config.kafka_access import AccessDenied, auth_resource, denied, secured
from streamproc.config.settings import KafkaSettings
from streamproc.config.topology import TopicSpec, Topology


@dataclass
class TopicsReport:
    created: list[str] = field(default_factory=list)
    ok: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # human-readable lines

    @property
    def healthy(self) -> bool:
        return not self.missing and not self.mismatched

    def lines(self) -> list[str]:
        out = [f"created   {n}" for n in self.created]
        out += [f"ok        {n}" for n in self.ok]
        out += [f"MISSING   {n}" for n in self.missing]
        out += [f"MISMATCH  {m}" for m in self.mismatched]
        return out


async def describe_partitions(admin: AIOKafkaAdminClient, names: list[str], *,
                              denied_as: tuple[str, Any] | None = None,
                              ) -> dict[str, tuple[int, int]]:
    """{topic: (partitions, replication factor)} for the topics that exist. The topic list
    leaves out topics the client may not DESCRIBE: with denied_as=(operation, settings or
    client kwargs), such a topic raises AccessDenied naming it and `operation` (only asked on
    a secured connection: a metadata request for a missing topic may auto-create it)."""
    existing = set(await admin.list_topics())
    if denied_as is not None and secured(denied_as[1]):
        for t in await admin.describe_topics([n for n in names if n not in existing]):
            if auth_resource(t["error_code"]):
                raise AccessDenied(denied("TOPIC", t["topic"], denied_as[0], denied_as[1]))
    want = [n for n in names if n in existing]
    if not want:
        return {}
    out = {}
    for t in await admin.describe_topics(want):
        if t.get("error_code", 0) == 0:
            parts = t["partitions"]
            rf = len(parts[0]["replicas"]) if parts else 0
            out[t["topic"]] = (len(parts), rf)
    return out


async def reconcile(topology: Topology, client_kwargs: dict, *, create: bool,
                    kafka: KafkaSettings | None = None) -> TopicsReport:
    """`kafka`: the settings the client_kwargs came from (error messages name the user)."""
    admin = AIOKafkaAdminClient(**client_kwargs, request_timeout_ms=30000)
    await admin.start()
    try:
        specs = topology.all_topics()
        current = await describe_partitions(admin, [t.name for t in specs])
        report = TopicsReport()
        to_create: list[TopicSpec] = []
        for t in specs:
            if t.name not in current:
                to_create.append(t)
                continue
            _compare(t, current[t.name], report)
        if not create:
            report.missing = [t.name for t in to_create]
            return report
        if to_create:
            new = [NewTopic(t.name, t.partitions, t.replication_factor,
                            topic_configs=t.kafka_config()) for t in to_create]
            try:
                resp = await admin.create_topics(new, timeout_ms=30000)
            except TopicAlreadyExistsError:
                resp = None
            errors = _create_errors(resp)
            raced = [t for t in to_create if errors.get(t.name, (0,))[0] == 36]
            now = await describe_partitions(admin, [t.name for t in raced]) if raced else {}
            for t in to_create:
                err = errors.get(t.name)
                if err is None:
                    report.created.append(t.name)
                elif err[0] == 36:  # TOPIC_ALREADY_EXISTS: created meanwhile by someone else
                    _compare(t, now.get(t.name, (0, 0)), report)
                elif auth_resource(err[0]):
                    report.mismatched.append(f"{t.name}: could not be created: " + denied(
                        "TOPIC", t.name, "CREATE", kafka, "topics apply"))
                else:
                    report.mismatched.append(f"{t.name}: could not be created: {err[1]} ({err[0]})")
        return report
    finally:
        await admin.close()


def _compare(t: TopicSpec, actual: tuple[int, int], report: TopicsReport) -> None:
    parts, rf = actual
    problems = []
    if parts != t.partitions:
        problems.append(f"partitions {parts}, topics.yaml says {t.partitions}")
    if rf != t.replication_factor:
        problems.append(f"replication factor {rf}, topics.yaml says {t.replication_factor}")
    if problems:
        report.mismatched.append(f"{t.name}: " + "; ".join(problems))
    else:
        report.ok.append(t.name)


def _create_errors(resp: object) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    for item in getattr(resp, "topic_errors", None) or getattr(resp, "topics", None) or []:
        name, code = item[0], item[1]
        msg = item[2] if len(item) > 2 and isinstance(item[2], str) else ""
        if code:
            out[name] = (code, msg or "")
    return out


async def topic_configs(client_kwargs: dict, names: list[str]) -> dict[str, dict[str, str]]:
    """The current configs of topics (for tests and `topics check --verbose`)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(**client_kwargs)
    await admin.start()
    try:
        resp = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        out: dict[str, dict[str, str]] = {}
        for r in resp:
            for res in r.resources:
                # (error_code, error_message, resource_type, resource_name, config_entries)
                out[res[3]] = {e[0]: e[1] for e in res[4]}
        return out
    finally:
        await admin.close()
