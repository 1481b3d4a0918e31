"""Mailmodo destination: contacts (addToList, addToList/batch), custom events (addEvent) and
campaign triggers (triggerCampaign/{id}). Auth is the `mmApiKey` header."""

from __future__ import annotations

from streamproc.config.settings import API_PATHS, MailmodoSettings
from streamproc.core.records import MAILMODO
from streamproc.destinations.mailmodo.mapping import MAX_CONTACTS_PER_BATCH, build_requests
from streamproc.destinations.mailmodo.responses import interpret

NAME = MAILMODO
API_PATH = API_PATHS[NAME]  # the client adds it to the base URL (scheme://host[:port][/prefix])
INTEGRATION = "Mailmodo"
MAX_RECORDS_PER_REQUEST = MAX_CONTACTS_PER_BATCH


def auth(settings: MailmodoSettings) -> dict[str, str]:
    """Headers sent with every Mailmodo request."""
    return {"mmApiKey": settings.api_key.get(), "Content-Type": "application/json"}


# the destination protocol (the mapping's helpers are in .mapping)
__all__ = ["NAME", "API_PATH", "INTEGRATION", "MAX_RECORDS_PER_REQUEST", "auth", "build_requests",
           "interpret"]
