"""The HTTP side of delivery: one keep-alive httpx.AsyncClient per destination (base URL, auth
headers, timeout, pool sized to the concurrency cap) and sending an HttpRequest as JSON."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import httpx
import orjson

from streamproc.destinations.request import HttpRequest

JSON_CONTENT_TYPE = "application/json"
USER_AGENT = "streamproc/0.1"
KEEPALIVE_EXPIRY_S = 30.0


def build_client(destination: ModuleType | Any, settings: Any, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The client for one destination: `settings.base_url` (scheme://host[:port][/prefix], a
    prefix being where a proxy or mock serves the vendor's API) followed by the destination's
    API path (`destination.API_PATH`, e.g. Mailmodo's /api/v1), so a request's path is
    relative to the API; `destination.auth(settings)` headers on every request,
    `settings.delivery` timeout, pool = concurrency cap, HTTP/1.1 keep-alive.
    Pass a transport (e.g. httpx.MockTransport) in tests. Close it with `await client.aclose()`."""
    delivery = settings.delivery
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    headers.update(destination.auth(settings))
    return httpx.AsyncClient(
        base_url=settings.base_url.rstrip("/") + getattr(destination, "API_PATH", ""),
        headers=headers,
        timeout=httpx.Timeout(delivery.timeout_s),
        limits=httpx.Limits(max_connections=delivery.concurrency,
                            max_keepalive_connections=delivery.concurrency,
                            keepalive_expiry=KEEPALIVE_EXPIRY_S),
        http1=True,
        http2=False,
        follow_redirects=False,
        transport=transport,
    )


def encode_body(body: Any) -> bytes:
    """JSON bytes via orjson (non-str dict keys allowed). Raises TypeError when not encodable."""
    return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)


async def send(client: httpx.AsyncClient, request: HttpRequest) -> httpx.Response:
    """Send one request; the body is JSON unless it is None. Network errors and timeouts raise
    httpx.TransportError (TimeoutException is one)."""
    if request.body is None:
        return await client.request(request.method, request.path)
    content_type = client.headers.get("Content-Type", JSON_CONTENT_TYPE)
    return await client.request(request.method, request.path, content=encode_body(request.body),
                                headers={"Content-Type": content_type})
