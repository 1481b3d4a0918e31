"""What the worker's agents share: their batches, straight from the fetch loop (batches_of),
and the options of their faust tables (raw bytes keys and values, bounded RocksDB stores)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from streamproc import runtime

if TYPE_CHECKING:
    from streamproc.worker.context import Runtime

# Tables: keys utf-8, values orjson bytes; bytes types make faust use its raw codec (no
# codec work per access). Pass these as Table(**RAW_TABLE) (or table_kwargs(...)).
RAW_TABLE = {"key_type": bytes, "value_type": bytes}

# RocksDB options per partition store. faust's defaults suit one big store: 64 MB write
# buffers (up to 3) and a 2 GB block cache *for each partition's DB*, and a worker opens one
# DB per table partition (users, contacts, one ledger per destination: 36 with 6 partitions).
# Memory then grew with the data: bench/state.py measured 432 MB RSS at 200k contacts, nearly
# all of it memtables. These bound each DB to a few MB (more, smaller flushes; reads of cold
# keys hit the SST files, which the OS page cache serves).
STATE_STORE_OPTIONS = {"write_buffer_size": 8 * 2**20, "max_write_buffer_number": 2,
                       "block_cache_size": 16 * 2**20}
LEDGER_STORE_OPTIONS = {"write_buffer_size": 4 * 2**20, "max_write_buffer_number": 2,
                        "block_cache_size": 4 * 2**20}


def table_kwargs(store_options: dict[str, Any]) -> dict[str, Any]:
    """Table(**table_kwargs(...)): raw bytes keys/values and bounded RocksDB options (a fresh
    dict per table: faust's store pops keys from it)."""
    return {**RAW_TABLE, "options": dict(store_options)}


def batches_of(rt: Runtime, topic: Any, max_: int, within: float) -> Callable[[], Any]:
    """For an agent on `topic`: a function returning its batches of the topic's records
    (runtime.Batch: `with batch as events:`), at most `max_`, waiting at most `within` seconds
    for more after the first. The records come straight from the fetch loop (runtime/feeds.py),
    not through the agent's faust stream, which is left unread. Call it when registering the
    agent: the feed must exist before the first fetch."""
    feed = runtime.feed_for(rt.app, topic.get_topic_name())
    return lambda: runtime.take(rt.app, feed, max_, within)
