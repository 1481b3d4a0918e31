"""bench.common.delete_topics on the real broker: a burst's topics (its prefix) go, and no
other topic does, so every burst of a bench A/B runs on a broker in the same state."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.common import create_topics, delete_topics, new_prefix  # noqa: E402


async def _topics(bootstrap: str, create: str | None = None, delete: str | None = None
                  ) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if create:
            await admin.create_topics([NewTopic(create, 1, 1)])
        if delete:
            await admin.delete_topics([delete])
        return set(await admin.list_topics())
    finally:
        await admin.close()


def test_a_bursts_topics_are_deleted_and_no_others(kafka_bootstrap: str) -> None:
    prefix = new_prefix("t")
    topo = create_topics(kafka_bootstrap, prefix)
    other = prefix.rstrip(".") + "-other"  # shares the prefix's start but not the prefix
    mine = {t.name for t in topo.all_topics()}
    try:
        for _ in range(50):  # the broker's metadata, up to date
            before = asyncio.run(_topics(kafka_bootstrap, None if _ else other))
            if mine <= before and other in before:
                break
            time.sleep(0.2)
        assert mine <= before and other in before
        gone = delete_topics(kafka_bootstrap, prefix)
        assert set(gone) == {t for t in before if t.startswith(prefix)} >= mine
        for _ in range(50):  # deletion is asynchronous on the broker
            after = asyncio.run(_topics(kafka_bootstrap))
            if not after & mine:
                break
            time.sleep(0.2)
        assert not after & mine and other in after
    finally:
        asyncio.run(_topics(kafka_bootstrap, delete=other))
