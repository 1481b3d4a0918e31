"""Test helper: grants and revokes Kafka ACLs (streamproc.config.acls.Acl) on the secured local
broker as its super user, with the CreateAcls/DeleteAcls protocol requests through aiokafka
(aiokafka has no ACL API; a JVM per kafka-acls call would make the ACL tests minutes longer)."""

from __future__ import annotations

import asyncio
from typing import Any, Iterable

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest

from streamproc.config.acls import Acl

RESOURCE = {"TOPIC": 2, "GROUP": 3, "CLUSTER": 4, "TRANSACTIONAL_ID": 5}
PATTERN = {"LITERAL": 3, "PREFIXED": 4}
OPERATION = {"ALL": 2, "READ": 3, "WRITE": 4, "CREATE": 5, "DELETE": 6, "ALTER": 7,
             "DESCRIBE": 8, "CLUSTER_ACTION": 9, "DESCRIBE_CONFIGS": 10, "ALTER_CONFIGS": 11,
             "IDEMPOTENT_WRITE": 12}
ALLOW = 3


def _entries(acls: Iterable[Acl]) -> list[tuple[Any, ...]]:
    return [(RESOURCE[a.resource_type], "kafka-cluster" if a.resource_type == "CLUSTER" else a.name,
             PATTERN[a.pattern], a.principal, "*", OPERATION[op], ALLOW)
            for a in acls for op in a.operations]


async def _send(admin_kwargs: dict[str, Any], requests: list[Any]) -> None:
    admin = AIOKafkaAdminClient(**admin_kwargs, request_timeout_ms=30000)
    await admin.start()
    try:
        for req in requests:
            resp = await admin._send_request(req)
            results = resp.to_object()
            for r in results.get("creation_responses", []) + results.get("filter_responses", []):
                assert r["error_code"] == 0, (req, r)
    finally:
        await admin.close()


def grant(admin_kwargs: dict[str, Any], acls: Iterable[Acl]) -> None:
    asyncio.run(_send(admin_kwargs, [CreateAclsRequest(*e) for e in _entries(acls)]))


def revoke(admin_kwargs: dict[str, Any], acls: Iterable[Acl]) -> None:
    asyncio.run(_send(admin_kwargs, [DeleteAclsRequest(*e) for e in _entries(acls)]))
