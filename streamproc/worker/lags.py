"""Consumer lag of this worker's assigned source partitions (inputs, internal topics, sinks; no
changelogs), from what the consumer already holds in memory: the metrics refreshers
(streamproc/http/observe.py) and the delivery agents' waiting-records gauge read it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamproc import runtime

if TYPE_CHECKING:
    from streamproc.worker.context import Runtime


def consumer_of(rt: Runtime) -> Any:
    return runtime.started_consumer(rt.app)


def assigned_source_partitions(rt: Runtime) -> list[Any]:
    """The assigned partitions of the topics the agents consume (no changelogs), sorted."""
    consumer = consumer_of(rt)
    if consumer is None:
        return []
    try:
        assigned = consumer.assignment()
    except Exception:  # consumer not started / stopping
        return []
    ours = set(rt.topics)
    return sorted((tp for tp in assigned if tp.topic in ours),
                  key=lambda tp: (tp.topic, tp.partition))


def consumer_lags(rt: Runtime) -> dict[tuple[str, int], int]:
    """{(topic, partition): lag} for the assigned source partitions whose highwater is known."""
    consumer = consumer_of(rt)
    out: dict[tuple[str, int], int] = {}
    if consumer is None:
        return out
    for tp in assigned_source_partitions(rt):
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # revoked between assignment() and now, or not fetched yet
            continue
        if highwater is None:
            continue
        committed = consumer.committed_offset(tp)
        out[(tp.topic, tp.partition)] = max(0, int(highwater) - int(committed or 0))
    return out
