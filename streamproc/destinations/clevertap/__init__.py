"""CleverTap destination: custom events through the Upload API (/1/upload), identified by the
CleverTap ID (objectId). Auth is the account id and passcode headers."""

from __future__ import annotations

from streamproc.config.settings import API_PATHS, CleverTapSettings
from streamproc.core.records import CLEVERTAP
from streamproc.destinations.clevertap.mapping import MAX_RECORDS_PER_UPLOAD, build_requests
from streamproc.destinations.clevertap.responses import interpret

NAME = CLEVERTAP
API_PATH = API_PATHS[NAME]  # the client adds it to the base URL (scheme://host[:port][/prefix])
INTEGRATION = "CleverTap"
MAX_RECORDS_PER_REQUEST = MAX_RECORDS_PER_UPLOAD


def auth(settings: CleverTapSettings) -> dict[str, str]:
    """Headers sent with every CleverTap request."""
    return {"X-CleverTap-Account-Id": settings.account_id,
            "X-CleverTap-Passcode": settings.passcode.get(),
            "Content-Type": "application/json; charset=utf-8"}


# the destination protocol (the mapping's helpers are in .mapping)
__all__ = ["NAME", "API_PATH", "INTEGRATION", "MAX_RECORDS_PER_REQUEST", "auth", "build_requests",
           "interpret"]
