"""Every destination by slug, so the delivery engine stays generic. Each module offers NAME,
INTEGRATION, MAX_RECORDS_PER_REQUEST, auth(settings), build_requests(...) and interpret(...)."""

from __future__ import annotations

from types import ModuleType

from streamproc.destinations import clevertap, mailjet, mailmodo, segment

DESTINATIONS: dict[str, ModuleType] = {
    module.NAME: module for module in (mailmodo, segment, clevertap, mailjet)
}


def destination(slug: str) -> ModuleType:
    """The destination module for `slug` (KeyError names the known ones)."""
    try:
        return DESTINATIONS[slug]
    except KeyError:
        raise KeyError(f"unknown destination {slug!r}; known: {', '.join(DESTINATIONS)}") from None
