"""Python's cyclic garbage collector, tuned for a worker that allocates a few objects per
record and holds a large, long-lived heap (faust, aiokafka, the app's own objects).

With Python's defaults (a young-generation collection every 700 net allocations, a full one
every 100 young ones) the worker spent about a tenth of its CPU in the collector (gc.callbacks,
bench/routing.py, 100k events: 1.5 s of 14 s), most of it in full collections that walk every
live object, about 70 ms each, and more through the cache misses those walks cause. With a
50,000 threshold and the start-up heap frozen the collector took 0.2 s, and the worker's CPU per
input fell by about a sixth (A/B runs on one broker, together with output.key_hash; README,
Benchmarks).

Reference cycles are still collected, only less often, so garbage in cycles can grow by up to
one threshold's worth of objects between collections; the state benchmark's RSS figures (1M
contacts, bench/state.py) are taken with these settings. `STREAMPROC_GC_THRESHOLD=0` keeps
Python's defaults."""

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
