"""Python's cyclic garbage collector, tuned for a worker that allocates a few objects per
record and holds a large, long-lived heap (faust, aiokafka, the app's own objects).

With Python's defaults (a young-generation collection every 700 net allocations, a full one
every 100 young ones) the worker spent about a tenth of its CPU in the collector, and more
through the cache misses its scans cause: a full collection walks every live object, each
one ~70 ms here. bench/routing.py measured 0.137 CPU-s per 1k inputs with the defaults
against 0.082 with a 50,000 threshold and the start-up heap frozen (README, Benchmarks).

The worker's records do not form reference cycles in the steady state (cycles come from
exceptions with tracebacks and from asyncio's futures), so collecting them less often costs
little memory; `STREAMPROC_GC_THRESHOLD=0` keeps Python's defaults."""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

OLDER_THRESHOLDS = (20, 20)  # generation 1 and 2, counted in collections of the one below


def configure(threshold: int) -> bool:
    """Set the young-generation threshold (0: leave Python's defaults). True when set."""
    if threshold <= 0:
        return False
    gc.set_threshold(threshold, *OLDER_THRESHOLDS)
    return True


def freeze_startup_heap(threshold: int) -> None:
    """Move every object alive now (modules, the app, its services) to the permanent
    generation, so later full collections skip them. Called once the worker has started."""
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    log.debug("gc: %d start-up objects frozen; thresholds %s", gc.get_freeze_count(),
              gc.get_threshold())
