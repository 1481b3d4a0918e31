"""Token bucket rate, concurrency cap and the exclusive lock."""

from __future__ import annotations

import asyncio

import pytest

from delivery_fakes import FakeClock
from streamproc.delivery.ratelimit import RateLimiter, SendGate


async def test_rate_limiter_achieves_rps_with_a_fake_clock():
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(50):
        await limiter.acquire()
    assert clock.now - start == pytest.approx(4.9)  # first at once, then every 0.1 s
    assert 50 / (clock.now - start + 0.1) == pytest.approx(10.0)


async def test_concurrent_acquirers_share_the_rate():
    clock = FakeClock()
    limiter = RateLimiter(5.0, clock=clock, sleep=clock.sleep)
    start = clock.now
    times = []

    async def one() -> None:
        await limiter.acquire()
        times.append(clock.now)

    await asyncio.gather(*(one() for _ in range(20)))
    assert clock.now - start == pytest.approx(19 / 5)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g == pytest.approx(0.2) for g in gaps)


async def test_burst_lets_the_first_requests_through_at_once():
    clock = FakeClock()
    limiter = RateLimiter(2.0, burst=5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        await limiter.acquire()
    assert clock.sleeps == []
    await limiter.acquire()
    assert clock.sleeps == [pytest.approx(0.5)]


async def test_zero_rps_is_unlimited():
    clock = FakeClock()
    limiter = RateLimiter(0, clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        await limiter.acquire()
    assert clock.sleeps == []


async def _run(gate: SendGate, n: int, exclusive) -> dict:
    seen = {"now": 0, "max": 0, "excl_now": 0, "excl_max": 0}

    async def one(i: int) -> None:
        excl = exclusive(i)
        async with gate.slot(exclusive=excl):
            seen["now"] += 1
            seen["max"] = max(seen["max"], seen["now"])
            if excl:
                seen["excl_now"] += 1
                seen["excl_max"] = max(seen["excl_max"], seen["excl_now"])
            await asyncio.sleep(0.002)
            seen["now"] -= 1
            if excl:
                seen["excl_now"] -= 1

    await asyncio.gather(*(one(i) for i in range(n)))
    return seen


async def test_concurrency_cap():
    seen = await _run(SendGate(rps=0, concurrency=3), 12, lambda i: False)
    assert seen["max"] == 3


async def test_exclusive_lock_allows_one_exclusive_request_in_flight():
    seen = await _run(SendGate(rps=0, concurrency=4), 12, lambda i: i % 2 == 0)
    assert seen["excl_max"] == 1  # exclusive requests one at a time
    assert seen["max"] > 1  # others still run beside them


def test_bad_arguments():
    with pytest.raises(ValueError):
        RateLimiter(-1)
    with pytest.raises(ValueError):
        SendGate(rps=1, concurrency=0)
