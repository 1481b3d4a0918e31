"""Every ingest page on the worker's web server: the Segment-compatible collector and the
webhooks. create_app hands `register` to web.register (through the runtime's web hooks)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamproc.http.ingest import segment, webhooks

if TYPE_CHECKING:
    from streamproc.worker.context import Runtime


def register(rt: Runtime) -> None:
    """Add every ingest page (called by web.register through the runtime's web hooks)."""
    segment.register(rt)
    webhooks.register(rt)
