"""Send admission for one destination: an async token-bucket rate limit, a concurrency cap and
an exclusive lock (at most one `exclusive` request in flight, e.g. Mailmodo addToList/batch)."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """Token bucket: `rps` tokens per second, at most `burst` stored (default 1: evenly spaced
    requests). rps 0 = unlimited. Waiters are served first come, first served."""

    def __init__(self, rps: float, burst: float | None = None, *, clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        if rps < 0:
            raise ValueError("rps must be >= 0")
        self.rps = rps
        self.burst = max(1.0, burst if burst is not None else 1.0)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()
        self._lock = asyncio.Lock()

    @property
    def unlimited(self) -> bool:
        return self.rps == 0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rps)
        self._updated = now

    async def acquire(self) -> None:
        """Wait until one request may start."""
        if self.unlimited:
            return
        async with self._lock:
            self._refill()
            while self._tokens < 1.0:
                await self._sleep((1.0 - self._tokens) / self.rps)
                self._refill()
            self._tokens -= 1.0


class SendGate:
    """Everything a request waits for before it is sent: the exclusive lock (exclusive requests
    only, taken first so waiters hold no slot), a concurrency slot, then a rate-limit token."""

    def __init__(self, *, rps: float, concurrency: int, burst: float | None = None,
                 clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.concurrency = concurrency
        self.limiter = RateLimiter(rps, burst, clock=clock, sleep=sleep)
        self._slots = asyncio.Semaphore(concurrency)
        self._exclusive = asyncio.Lock()
        self.in_flight = 0

    @asynccontextmanager
    async def _maybe_exclusive(self, exclusive: bool) -> AsyncIterator[None]:
        if not exclusive:
            yield
            return
        async with self._exclusive:
            yield

    @asynccontextmanager
    async def slot(self, *, exclusive: bool = False) -> AsyncIterator[None]:
        """`async with gate.slot(exclusive=request.exclusive): send it`."""
        async with self._maybe_exclusive(exclusive), self._slots:
            await self.limiter.acquire()
            self.in_flight += 1
            try:
                yield
            finally:
                self.in_flight -= 1
