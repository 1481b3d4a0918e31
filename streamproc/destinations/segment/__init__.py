"""Segment destination: track messages through the HTTP Tracking API's /v1/batch. Auth is HTTP
Basic with the write key as user name and an empty password. Any 200 is success."""

from __future__ import annotations

import base64

from streamproc.destinations.outcomes import interpret
from streamproc.destinations.segment.mapping import (MAX_MESSAGE_BYTES, MAX_MESSAGES_PER_REQUEST,
                                                     MAX_REQUEST_BYTES, batch_message,
                                                     batch_request, build_requests)
from streamproc.config.settings import API_PATHS, SegmentSettings
from streamproc.core.records import SEGMENT

NAME = SEGMENT
API_PATH = API_PATHS[NAME]  # the client adds it to the base URL (scheme://host[:port][/prefix])
INTEGRATION = "Segment"
MAX_RECORDS_PER_REQUEST = MAX_MESSAGES_PER_REQUEST


def auth(settings: SegmentSettings) -> dict[str, str]:
    """Headers sent with every Segment request."""
    token = base64.b64encode(f"{settings.write_key.get()}:".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


__all__ = ["NAME", "API_PATH", "INTEGRATION", "MAX_RECORDS_PER_REQUEST", "MAX_MESSAGE_BYTES",
           "MAX_REQUEST_BYTES", "auth", "batch_message", "batch_request", "build_requests",
           "interpret"]
