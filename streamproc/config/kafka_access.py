"""Kafka authorization: failures as messages naming the missing permission (resource type,
name, operation, principal), where aiokafka only says TopicAuthorizationFailed; and the
worker's start-up check of what it can verify without writing (group, reads, creates)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Iterable

from streamproc.config.settings import KafkaSettings
from streamproc.core.errors import ConfigError

# Kafka error codes of the authorization failures: the resource type each one is about
AUTH_ERRORS = {29: "TOPIC", 30: "GROUP", 31: "CLUSTER", 53: "TRANSACTIONAL_ID"}


def principal(k: KafkaSettings | dict[str, Any] | None) -> str:
    """The principal a client authenticates as (settings, or aiokafka client kwargs)."""
    if isinstance(k, dict):
        user = k.get("sasl_plain_username") if k.get("sasl_mechanism") else None
    else:
        user = k.sasl_username if k and k.security_protocol.startswith("SASL") else None
    return f"User:{user}" if user else "this client"


def secured(k: KafkaSettings | dict[str, Any] | None) -> bool:
    """A TLS or SASL connection (settings, or aiokafka client kwargs)."""
    proto = k.get("security_protocol") if isinstance(k, dict) else (k and k.security_protocol)
    return proto not in (None, "PLAINTEXT")


def denied(resource_type: str, name: str, operation: str, k: KafkaSettings | dict | None,
           doing: str = "") -> str:
    """`Kafka denied User:x READ on TOPIC 'a.b' (...)`: the one phrasing every caller uses."""
    what = f"{resource_type} {name!r}" if resource_type != "CLUSTER" else "the CLUSTER"
    return (f"Kafka denied {principal(k)} {operation} on {what}{f' ({doing})' if doing else ''}: "
            f"missing ACL, grant it (`streamproc acls` prints what each role needs)")


def auth_resource(error: Any) -> str | None:
    """The resource type of an aiokafka authorization error (class or instance, or an error
    code), None for any other error."""
    code = error if isinstance(error, int) else getattr(error, "errno", None)
    return AUTH_ERRORS.get(code) if isinstance(code, int) else None


def explain(error: Any, k: KafkaSettings, topology: Any, app_id: str, role: str) -> str | None:
    """For an aiokafka authorization error raised in a command: the message naming what the
    role needs on that resource (streamproc.config.acls), None for any other error."""
    from streamproc.config.acls import required_acls

    rtype = auth_resource(error)
    if rtype is None:
        return None
    name = app_id if rtype == "GROUP" else str(error.args[0]) if error.args else "?"
    acls = [a for a in required_acls(topology, app_id) if a.role == role
            and a.resource_type == rtype and (a.name == name or a.pattern == "PREFIXED"
                                              and name.startswith(a.name))]
    ops = ", ".join(acls[0].operations) if acls else "DESCRIBE"
    return denied(rtype, name, ops, k)


class AccessDenied(ConfigError):
    """The broker refuses something the worker or a command needs (the message names it)."""


READ_BIT = 1 << 3  # AclOperation.READ in an authorized_operations bit field


async def check_worker_access(k: KafkaSettings, group: str, consumed: Iterable[str],
                              produced: Iterable[str], created: Iterable[str]) -> None:
    """Fail at start, naming the first missing permission: READ on the consumer group, READ on
    every consumed topic (a fetch), DESCRIBE on every produced topic, CREATE on the worker's
    own topics (CreateTopics with validate_only: nothing is created). WRITE cannot be checked
    without writing: a denied write is named when it happens (streamproc.worker.output)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

    from streamproc.config.kafka import client_kwargs

    kw = client_kwargs(k)
    consumed, produced, created = list(consumed), list(produced), list(created)
    admin = AIOKafkaAdminClient(**kw, request_timeout_ms=30000)
    await admin.start()
    try:
        try:
            groups = await _describe_group(admin, group)
        except GroupAuthorizationFailedError:
            raise AccessDenied(denied("GROUP", group, "READ", k, "the worker's consumer group")
                               ) from None
        ops = groups[0].to_object()["groups"][0].get("authorized_operations", -1) if groups else -1
        if ops >= 0 and not ops & READ_BIT:
            raise AccessDenied(denied("GROUP", group, "READ", k, "the worker's consumer group"))
        for t in await admin.describe_topics(consumed + produced):
            if auth_resource(t["error_code"]):
                op = "READ" if t["topic"] in consumed else "WRITE"
                raise AccessDenied(denied("TOPIC", t["topic"], op, k, "the worker " + (
                    "consumes it" if op == "READ" else "produces to it")))
        if created:
            resp = await admin.create_topics([NewTopic(n, 1, 1) for n in created],
                                             validate_only=True)
            for name, code, *_ in resp.topic_errors:
                if auth_resource(code):
                    raise AccessDenied(denied("TOPIC", name, "CREATE", k,
                                              "the worker creates its table changelogs at start"))
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(**kw, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:  # one fetch at the end of each consumed topic's partition 0: READ, nothing consumed
        tps = [TopicPartition(topic, 0) for topic in consumed]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        try:
            await consumer.getmany(*tps, timeout_ms=1000)
        except TopicAuthorizationFailedError as e:
            topic = str(e.args[0]) if e.args else ", ".join(consumed)
            raise AccessDenied(denied("TOPIC", topic, "READ", k, "the worker consumes it")) from None
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


async def _describe_group(admin: Any, group: str, within: float = 60.0) -> Any:
    """describe_consumer_groups with the group's authorized operations, retrying while the
    coordinator is not available yet (a new cluster creates its offsets topic first)."""
    from aiokafka.errors import CoordinatorNotAvailableError, CoordinatorLoadInProgressError

    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await admin.describe_consumer_groups([group], include_authorized_operations=True)
        except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


def check_app_access(app: Any, settings: Any, topology: Any) -> None:
    """check_worker_access for a built app (streamproc.app.create.create_app): the topics its agents
    consume, every other topology topic it may produce to, its tables' changelogs and faust's
    leader topic (`<app id>-__assignor-__leader`, faust 0.15's name) as the topics it creates."""
    consumed = sorted(app.streamproc.topics)
    dests = [d for d in topology.destinations.values() if d.enabled]
    produced = [t.name for t in [*topology.inputs.values(), *topology.internal.values(),
                                 *(d.sink for d in dests), *(d.dead_letter for d in dests)]
                if t.name not in consumed]
    created = [t.changelog_topic.get_topic_name() for t in app.tables.values()]
    created.append(f"{app.conf.id}-__assignor-__leader")
    asyncio.run(check_worker_access(settings.kafka, app.conf.id, consumed, produced, created))
