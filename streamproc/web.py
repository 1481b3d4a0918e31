"""The worker's HTTP pages: liveness, readiness, Prometheus metrics (ingest endpoints and the
status page register themselves from their own modules)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faust.web import Request, Response, View

if TYPE_CHECKING:
    from streamproc.app import Runtime


def is_ready(runtime: Runtime) -> tuple[bool, str]:
    """Ready = started, not rebalancing, partitions assigned, table recovery finished."""
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

    for hook in runtime.extras.get("web_hooks", []):
        hook(runtime)
