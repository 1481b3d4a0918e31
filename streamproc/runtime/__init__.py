"""streamproc's runtime: the one package that extends faust-streaming, mode and aiokafka and
touches their internals (tests/unit/test_layering.py). It plugs in through faust's transport
registry (broker URL scheme `streamproc://`) and runs only on the versions check() accepts.

The offset invariant (README "Offsets"): each assigned input partition has a checkpoint, the
offset below which every record was processed (outputs and changelog records acknowledged)
or holds no record. Only a completed batch moves it, over records handed over since the last
seek, or, with none in flight, to the fetch position. Commits send it; a failed batch seeks
back to it.
"""

from streamproc.runtime.consumer import SCHEME, Consumer, started_consumer
from streamproc.runtime.feeds import Batch, FeedEvent, feed_for, take
from streamproc.runtime.tables import (Staged, TableWriter, active_dbs, offset_key, on_changelog_event,
                                       partition_dbs, set_current_event, wait_all)
from streamproc.runtime.versions import UnsupportedVersions
from streamproc.runtime.versions import check as check_versions

__all__ = ["SCHEME", "Batch", "Staged", "Consumer", "FeedEvent", "TableWriter", "UnsupportedVersions",
           "active_dbs", "check_versions", "feed_for", "offset_key", "on_changelog_event",
           "partition_dbs", "set_current_event", "started_consumer", "take", "wait_all"]
