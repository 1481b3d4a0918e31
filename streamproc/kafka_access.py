"""Kafka authorization failures as messages naming the missing permission (resource type,
name, operation and principal), where aiokafka only says TopicAuthorizationFailed and the like."""

from __future__ import annotations

from typing import Any

from streamproc.settings import KafkaSettings

# Kafka error codes of the authorization failures: the resource type each one is about
AUTH_ERRORS = {29: "TOPIC", 30: "GROUP", 31: "CLUSTER", 53: "TRANSACTIONAL_ID"}


def principal(k: KafkaSettings | None) -> str:
    if k is None or not k.security_protocol.startswith("SASL"):
        return "this client"
    return f"User:{k.sasl_username}"


def denied(resource_type: str, name: str, operation: str, k: KafkaSettings | None,
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
