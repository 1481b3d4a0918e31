"""BatchContext.set without the object its bytes encode (a caller that only has bytes) drops
the key's kept object: kept, it would be handed to the next event of the key in place of the
new bytes, against the invariant of BatchContext (a kept object is only ever the decoding of
the key's current bytes)."""

from __future__ import annotations

from types import SimpleNamespace

from streamproc.core.metrics import Metrics
from streamproc.core.state.model import KnownUser
from streamproc.worker.agents import BatchContext


def test_set_without_an_object_forgets_the_kept_one() -> None:
    rt = SimpleNamespace(metrics=Metrics(), table_writers={}, tables={"users": {}})
    ctx = BatchContext(rt, direct=False)
    first = KnownUser(user_id="u", emails=["old@x.io"])
    ctx.set("users", "u", first.dumps(), first)
    newer = KnownUser(user_id="u", emails=["new@x.io"])
    ctx.set("users", "u", newer.dumps())  # bytes only
    assert ctx.load("users", "u", KnownUser) == newer
