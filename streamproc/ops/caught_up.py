"""The "caught-up" signal (`streamproc wait --caught-up`, `GET /caught-up`): every topic the
worker group reads (the inputs, the repartition topics by_user and by_contact, the sink topic
of every enabled destination; not the changelogs, not the dead-letter topics) is processed up
to its end offset as of the call.

Processing an input writes records into by_user/by_contact and the sinks, so one snapshot of
the end offsets is not enough. It runs in rounds:
  1. read the group's committed offsets, then the end offsets of all those partitions (the
     round's snapshot);
  2. caught up if every committed offset is >= its end offset (no commit counts as 0);
  3. otherwise poll the committed offsets until they all reach the snapshot, then read the end
     offsets again (a new round, back to 2).
The committed offsets are always read before the end offsets they are compared with. A
worker commits an input offset only once that record's outputs are acknowledged, so outputs
of everything committed are already inside the end offsets read afterwards: "caught up"
means nothing produced before that last end-offset read is left unprocessed, downstream
hops included. The worker's checkpoint passes transaction markers, so committed == end when
caught up. End offsets are read at the worker's isolation level (read_committed: records of
transactions still open are not counted yet).

`behind` and `run_rounds` are the pure decision and its driver (unit-tested with fake reads);
`GroupOffsets` does the Kafka I/O (an admin client for the group's committed offsets, a
group-less consumer for the end offsets: it never joins the workers' group)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Optional

from streamproc.config.settings import Settings
from streamproc.config.topology import Topology
from streamproc.core.errors import ConfigError
from streamproc.ops.command_errors import error_text

Key = tuple[str, int]  # (topic, partition)

POLL_S = 0.5  # how often the committed offsets are read while waiting
READ_TIMEOUT_S = 10.0  # one offsets read may take at least this long, even past the deadline
DEFAULT_TIMEOUT_S = 300.0
SHOW_BEHIND = 20  # partitions named in the one-line message


@dataclass(frozen=True)
class Lag:
    """A partition whose committed offset (None: the group never committed it) is below its
    end offset."""

    topic: str
    partition: int
    committed: Optional[int]
    end: int

    def __str__(self) -> str:
        c = "none" if self.committed is None else str(self.committed)
        return f"{self.topic}:{self.partition} {c}/{self.end}"

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition,
                "committed": self.committed, "end": self.end}


def behind(committed: Mapping[Key, Optional[int]], ends: Mapping[Key, int]) -> list[Lag]:
    """The decision: the partitions of `ends` not processed up to their end offset, sorted.
    A partition the group never committed counts as committed at 0 (behind if it holds any
    offset, even records since deleted by retention: the worker commits past those once it
    fetched the partition). Empty list = caught up against this snapshot."""
    out = []
    for (topic, partition), end in sorted(ends.items()):
        c = committed.get((topic, partition))
        if (c if c is not None else 0) < end:
            out.append(Lag(topic, partition, c, end))
    return out


@dataclass
class Result:
    caught_up: bool
    rounds: int  # end-offset snapshots read
    seconds: float
    topics: int
    partitions: int
    behind: list[Lag] = field(default_factory=list)
    error: Optional[str] = None  # the last failed offsets read, when nothing better is known

    def summary(self) -> str:
        where = f"{self.topics} topics, {self.partitions} partitions"
        took = f"{self.seconds:.1f} s ({self.rounds} round{'s' * (self.rounds != 1)})"
        if self.caught_up:
            return f"caught up: {where}, {took}"
        text = f"not caught up after {took}"
        if self.behind:
            shown = ", ".join(str(lag) for lag in self.behind[:SHOW_BEHIND])
            more = len(self.behind) - SHOW_BEHIND
            text += (f": {len(self.behind)} of {self.partitions} partitions behind "
                     f"(topic:partition committed/end): {shown}"
                     + (f" and {more} more" if more > 0 else ""))
        if self.error:
            text += f"; last error: {self.error}"
        return text

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"caught_up": self.caught_up, "topics": self.topics,
                               "partitions": self.partitions, "rounds": self.rounds,
                               "seconds": round(self.seconds, 3),
                               "behind": [lag.as_dict() for lag in self.behind]}
        if self.error:
            out["error"] = self.error
        return out


def _describe(e: BaseException) -> str:
    return error_text(e) if str(e) else type(e).__name__


def _read_errors() -> tuple[type[BaseException], ...]:
    from aiokafka.errors import KafkaError

    return (KafkaError, OSError, asyncio.TimeoutError)


async def run_rounds(read_committed: Callable[[], Awaitable[Mapping[Key, Optional[int]]]],
                     read_ends: Callable[[], Awaitable[Mapping[Key, int]]], *,
                     timeout: float, interval: float = POLL_S,
                     read_timeout: float = READ_TIMEOUT_S,
                     clock: Callable[[], float] = time.monotonic,
                     sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> Result:
    """Rounds until caught up or `timeout` seconds passed; timeout=0 is exactly one round (one
    committed read, then one end-offsets read). A failed read (Kafka error, timeout) is
    retried at the next poll until the deadline."""
    errors = _read_errors()
    start = clock()
    deadline = start + max(0.0, timeout)
    snapshot: Optional[Mapping[Key, int]] = None
    lag: list[Lag] = []
    rounds = 0
    error: Optional[str] = None

    async def read(fn: Callable[[], Awaitable[Any]]) -> Any:
        return await asyncio.wait_for(fn(), max(read_timeout, deadline - clock()))

    def result(ok: bool) -> Result:
        keys = snapshot or {}
        return Result(ok, rounds, clock() - start, len({t for t, _ in keys}), len(keys),
                      [] if ok else lag, None if ok else error)

    while True:
        try:
            committed = await read(read_committed)
            if snapshot is None or not behind(committed, snapshot):
                snapshot = await read(read_ends)  # the snapshot is reached: a fresh read
                rounds += 1
            lag, error = behind(committed, snapshot), None
            if not lag:
                return result(True)
        except errors as e:
            error = _describe(e)
        if clock() >= deadline:
            return result(False)
        await sleep(max(0.0, min(interval, deadline - clock())))


# ------------------------------------------------------------------------------ Kafka I/O


def group_topics(topology: Topology) -> list[str]:
    """The topics the worker group reads: inputs, by_user, by_contact, enabled sinks."""
    names = [t.name for t in topology.inputs.values()]
    names += [topology.internal[k].name for k in ("by_user", "by_contact")]
    names += [topology.destinations[slug].sink.name for slug in topology.enabled]
    return names


class GroupOffsets:
    """The group's committed offsets and the end offsets of the group's topics. Use as
    `async with GroupOffsets(settings, topology) as g:`; both clients are stopped on exit."""

    def __init__(self, settings: Settings, topology: Topology) -> None:
        self.settings = settings
        self.group = settings.app_id
        self.topics = group_topics(topology)
        self.partitions: list[Any] = []  # TopicPartitions
        self.admin: Any = None
        self.consumer: Any = None

    async def __aenter__(self) -> GroupOffsets:
        from aiokafka import TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        from streamproc.config.kafka import client_kwargs
        from streamproc.config.topics import describe_partitions
        from streamproc.ops.topic_reader import new_consumer

        s = self.settings
        try:
            self.admin = AIOKafkaAdminClient(**client_kwargs(s.kafka), request_timeout_ms=30000,
                                             client_id=f"{s.client_id}-caught-up")
            await self.admin.start()
            found = await describe_partitions(self.admin, self.topics,
                                              denied_as=("DESCRIBE", s.kafka))
            missing = [t for t in self.topics if t not in found]
            if missing:
                raise ConfigError(f"topics missing on the broker: {', '.join(missing)} "
                                  f"(`streamproc topics apply` creates them)")
            self.partitions = [TopicPartition(t, p) for t in self.topics
                               for p in range(found[t][0])]
            self.consumer = new_consumer(s, "caught-up")
            await self.consumer.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        consumer, admin, self.consumer, self.admin = self.consumer, self.admin, None, None
        try:
            if consumer is not None:
                await consumer.stop()
        finally:
            if admin is not None:
                await admin.close()

    async def committed(self) -> dict[Key, Optional[int]]:
        from aiokafka.errors import GroupAuthorizationFailedError

        from streamproc.config.kafka_access import AccessDenied, denied

        try:
            got = await self.admin.list_consumer_group_offsets(self.group,
                                                               partitions=self.partitions)
        except GroupAuthorizationFailedError:  # not retried: no round can succeed
            raise AccessDenied(denied("GROUP", self.group, "DESCRIBE", self.settings.kafka,
                                      "the group's committed offsets")) from None
        out: dict[Key, Optional[int]] = {(tp.topic, tp.partition): None
                                         for tp in self.partitions}
        for tp, meta in got.items():
            if (tp.topic, tp.partition) in out and meta.offset >= 0:
                out[(tp.topic, tp.partition)] = meta.offset
        return out

    async def ends(self) -> dict[Key, int]:
        got = await self.consumer.end_offsets(self.partitions)
        return {(tp.topic, tp.partition): int(offset) for tp, offset in got.items()}


async def wait_caught_up(settings: Settings, topology: Topology, *, timeout: float,
                         interval: float = POLL_S) -> Result:
    """Rounds against the broker until caught up or `timeout` (0: one round, no waiting).
    Raises ConfigError when a topic is missing, KafkaError/OSError when the clients cannot
    start."""
    async with GroupOffsets(settings, topology) as g:
        return await run_rounds(g.committed, g.ends, timeout=timeout, interval=interval)


async def check_once(settings: Settings, topology: Topology) -> Result:
    """One round (GET /caught-up): never raises; a failure is a not-caught-up Result with
    its error."""
    start = time.monotonic()
    try:
        return await asyncio.wait_for(wait_caught_up(settings, topology, timeout=0),
                                      3 * READ_TIMEOUT_S)
    except (ConfigError, *_read_errors()) as e:
        return Result(False, 0, time.monotonic() - start, 0, 0,
                      error=_describe(e))


async def run_wait_command(settings: Settings, topology: Topology,
                           args: argparse.Namespace) -> int:
    """`streamproc wait --caught-up [--timeout S] [--json]`: 0 caught up, 1 not within the
    timeout (or the broker could not be asked), 2 bad usage (ConfigError: main)."""
    timeout = DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout
    if timeout < 0 or timeout != timeout:
        print("streamproc wait: --timeout must be a number of seconds >= 0", file=sys.stderr)
        return 2
    try:
        result = await wait_caught_up(settings, topology, timeout=timeout)
    except _read_errors() as e:
        print(f"streamproc wait: cannot read the offsets: {_describe(e)}", file=sys.stderr)
        return 1
    if args.json:
        import orjson

        print(orjson.dumps(result.as_dict()).decode(), flush=True)
    if result.caught_up:
        if not args.json:
            print(result.summary(), flush=True)
        return 0
    print(f"streamproc wait: {result.summary()}", file=sys.stderr, flush=True)
    return 1


__all__ = ["Lag", "Result", "behind", "run_rounds", "group_topics", "GroupOffsets",
           "wait_caught_up", "check_once", "run_wait_command"]
