"""Running sandbox fakes on 127.0.0.1: on the current event loop (`running`), in a background
thread (`SandboxServer`) or as a standalone process until SIGTERM (`serve_forever`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from typing import Any, AsyncIterator, Iterable

import orjson
from aiohttp import web

from streamproc.dev.sandbox.clevertap import CleverTapFake
from streamproc.dev.sandbox.mailjet import MailjetFake
from streamproc.dev.sandbox.mailmodo import MailmodoFake
from streamproc.dev.sandbox.segment import SegmentFake
from streamproc.dev.sandbox.server import SHUTDOWN_TIMEOUT_S, FakeApi

async def start_fakes(fakes: Iterable[FakeApi], host: str = "127.0.0.1",
                      ports: dict[str, int] | None = None) -> None:
    """Serve each fake on its own port (0 = a free one) and set its base_url (no path)."""
    for fake in fakes:
        runner = web.AppRunner(fake.build_app(), access_log=None,
                               shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        site = web.TCPSite(runner, host, (ports or {}).get(fake.name, 0))
        await site.start()
        port = runner.addresses[0][1]
        fake.base_url, fake._runner = f"http://{host}:{port}", runner


async def stop_fakes(fakes: Iterable[FakeApi]) -> None:
    """Stop serving; handlers still running (e.g. in Fault.delay) are cancelled."""
    for fake in fakes:
        if fake._runner is not None:
            await fake._runner.cleanup()
        leftovers = list(fake._handler_tasks)
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        fake._runner, fake.base_url = None, None


FAKE_NAMES = ("mailmodo", "segment", "clevertap", "mailjet")


def default_fakes() -> list[FakeApi]:
    return [MailmodoFake(), SegmentFake(), CleverTapFake(), MailjetFake()]


@contextlib.asynccontextmanager
async def running(*fakes: FakeApi, host: str = "127.0.0.1") -> AsyncIterator[dict[str, str]]:
    """Run fakes on the current event loop; yields {name: base_url}."""
    try:
        await start_fakes(fakes, host)
        yield {f.name: f.base_url for f in fakes}  # type: ignore[misc]
    finally:
        await stop_fakes(fakes)


class SandboxServer:
    """Runs fakes (default: all four) in a background thread with its own event loop."""

    def __init__(self, *fakes: FakeApi, host: str = "127.0.0.1",
                 ports: dict[str, int] | None = None) -> None:
        self.fakes = {f.name: f for f in (fakes or default_fakes())}
        self.host, self.ports = host, ports
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __getitem__(self, name: str) -> Any:
        return self.fakes[name]

    @property
    def base_urls(self) -> dict[str, str]:
        return {name: f.base_url for name, f in self.fakes.items()}  # type: ignore[misc]

    def start(self) -> dict[str, str]:
        """Start serving; returns {name: base_url}."""
        if self._thread is not None:
            return self.base_urls
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="sandbox-server", daemon=True)
        self._loop = loop
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_fakes(self.fakes.values(), self.host, self.ports), loop)
        try:
            future.result(timeout=10)
        except BaseException:
            self.stop()
            raise
        return self.base_urls

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(stop_fakes(self.fakes.values()), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> "SandboxServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- standalone process (demo mode) ---------------------------------------------------------
async def serve_forever(host: str = "127.0.0.1", ports: dict[str, int] | None = None,
                        port_file: str | None = None, stop: asyncio.Event | None = None) -> None:
    """Run all four fakes until `stop` is set or SIGINT/SIGTERM; print {name: base_url} JSON."""
    fakes = default_fakes()
    for fake in fakes:
        fake.log_limit = 1000
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await start_fakes(fakes, host, ports)
        urls = orjson.dumps({f.name: f.base_url for f in fakes})
        if port_file:
            tmp = f"{port_file}.tmp"
            with open(tmp, "wb") as out:
                out.write(urls)
            os.replace(tmp, port_file)  # readers never see a half-written file
        print(urls.decode(), flush=True)
        await stop.wait()
    finally:
        await stop_fakes(fakes)

