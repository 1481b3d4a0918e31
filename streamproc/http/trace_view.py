"""The worker's /trace.json (the status page's search box) over the worker's own outcomes index,
and the latest failed attempts per destination; the text timeline is streamproc/ops/trace_text.py."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from streamproc.worker.context import Runtime


def recent_failures(rt: Runtime, dest: str) -> list[dict[str, Any]]:
    """The destination's latest failed attempts on this worker (status page)."""
    outcomes = rt.outcomes
    return [] if outcomes is None else outcomes.recent_failures(dest)


def register_pages(rt: Runtime) -> None:
    """GET /trace.json?q=<message id | email | userId>[&limit=N] (the status page's search)."""
    from faust.web import Request, Response, View

    from streamproc.ops.trace import DEFAULT_LIMIT, TraceIndex, catch_up, index_path, lookup

    topic = rt.topology.internal["outcomes"].name
    lock = asyncio.Lock()
    state: dict[str, TraceIndex] = {}

    @rt.app.page("/trace.json")
    class TraceJson(View):
        async def get(self, request: Request) -> Response:
            query = (request.query.get("q") or "").strip()
            try:
                limit = max(1, min(100, int(request.query.get("limit") or DEFAULT_LIMIT)))
            except ValueError:
                limit = DEFAULT_LIMIT
            if not query:
                return self.json({"error": "q is required"}, status=400)
            async with lock:
                if "index" not in state:
                    state["index"] = TraceIndex(index_path(rt.settings, topic, "web"))
                try:
                    await catch_up(rt.settings, topic, state["index"])
                except LookupError as e:
                    return self.json({"error": str(e)}, status=503)
                found = lookup(state["index"], query, limit)
            return self.bytes(orjson.dumps({"query": query, "results": found}),
                              content_type="application/json",
                              headers={"Cache-Control": "no-store"})


def install(rt: Runtime) -> None:
    rt.web_hooks.append(register_pages)
