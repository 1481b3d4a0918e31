"""The worker's HTTP pages: liveness, readiness, Prometheus metrics, caught-up (one round of
streamproc/ops/caught_up.py for the whole group; ingest endpoints and the
status page register themselves from their own modules)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from faust.web import Request, Response, View

if TYPE_CHECKING:
    from streamproc.worker.context import Runtime


def is_ready(runtime: Runtime) -> tuple[bool, str]:
    """Ready = started, not rebalancing, partitions assigned, table recovery finished, output
    producer started (the ingest endpoints need it). The one
    readiness check: GET /ready, the status page and the streamproc_ready gauge
    (streamproc.http.observe.refresh_ready) all answer with it."""
    app = runtime.app
    if getattr(app, "rebalancing", False):
        return False, "rebalancing"
    try:
        assigned = app.consumer.assignment()
    except Exception:
        return False, "consumer not started"
    if not assigned:
        return False, "no partitions assigned"
    recovery = app.tables.recovery
    if not recovery.completed.is_set():
        return False, "recovering tables"
    if runtime.output.producer is None:
        return False, "output producer not started"
    return True, f"{len(assigned)} partitions assigned"


def register(runtime: Runtime) -> None:
    app = runtime.app

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "alive"})

    @app.page("/ready")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            ok, why = is_ready(runtime)
            return self.json({"ready": ok, "detail": why}, status=200 if ok else 503)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            runtime.metrics.refresh(runtime)
            return self.bytes(runtime.metrics.render(),
                              content_type="text/plain; version=0.0.4")

    caught_up_lock = asyncio.Lock()  # one check at a time: its clients are per call

    @app.page("/caught-up")
    class CaughtUp(View):
        """One round of streamproc.ops.caught_up for the whole group (200 / 503 + what is
        behind)."""

        async def get(self, request: Request) -> Response:
            from streamproc.ops.caught_up import check_once

            async with caught_up_lock:
                result = await check_once(runtime.settings, runtime.topology)
            return self.json(result.as_dict(), status=200 if result.caught_up else 503)

    for hook in runtime.web_hooks:
        hook(runtime)
