"""encode() slims an input event's `raw` and a Segment message's `context` on the object for
the encoding only: the object is left whole also when the encoding fails (here a context
that is not an object, which no parser builds, but a caller can)."""

from __future__ import annotations

import pytest

from streamproc.core.events.model import SegmentEvent
from streamproc.core.routing.messages import encode


def test_a_failed_encoding_leaves_the_event_whole() -> None:
    ev = SegmentEvent(type="track", message_id="m", user_id="u", anonymous_id=None,
                      timestamp=1.0, traits={}, context="traits", integrations={}, email=None,
                      email_key=None, raw={"whole": 1})
    with pytest.raises(TypeError):
        encode(ev)
    assert ev.raw == {"whole": 1} and ev.context == "traits"
