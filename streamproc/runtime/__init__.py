"""streamproc's runtime: the one package that extends faust-streaming, mode and aiokafka, and
the only one that touches their internals (tests/unit/test_layering.py fails on a private
name of theirs anywhere else). It plugs in through faust's transport registry (the broker
URL scheme `streamproc://` selects runtime.consumer.Transport and its Consumer) and is
written for the exact versions in runtime/versions.py, which check() enforces at start.

The offset invariant (README "Offsets"): every assigned input partition has a checkpoint,
the offset below which every record was processed, with its outputs and changelog records
acknowledged by the broker, or holds no record. It moves forward only when an agent batch
completes, over records handed over since the partition was last sought (or, with none in
flight, to the fetch position). Commits send the checkpoint; a failed batch seeks back to it.
"""

from streamproc.runtime.consumer import SCHEME, Consumer, started_consumer
from streamproc.runtime.feeds import Batch, FeedEvent, feed_for, take
from streamproc.runtime.tables import (TableWriter, active_dbs, offset_key, on_changelog_event,
                                       partition_dbs, set_current_event, wait_all)
from streamproc.runtime.versions import UnsupportedVersions
from streamproc.runtime.versions import check as check_versions

__all__ = ["SCHEME", "Batch", "Consumer", "FeedEvent", "TableWriter", "UnsupportedVersions",
           "active_dbs", "check_versions", "feed_for", "offset_key", "on_changelog_event",
           "partition_dbs", "set_current_event", "started_consumer", "take", "wait_all"]
