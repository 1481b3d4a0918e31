"""Backoff bounds: full and decorrelated jitter, Retry-After, and the retry-time budget."""

from __future__ import annotations

import random

import pytest

from delivery_fakes import FakeClock
from streamproc.delivery.backoff import DECORRELATED_JITTER, FULL_JITTER, BackoffPolicy


def test_full_jitter_stays_under_the_exponential_ceiling_and_the_max():
    policy = BackoffPolicy(initial_s=0.5, max_s=8.0, jitter=FULL_JITTER)
    top = policy.start(rng=lambda: 1.0)
    assert [top.next_delay() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    rng = random.Random(1)
    b = policy.start(rng=rng.random)
    for n in range(200):
        delay = b.next_delay()
        assert 0.0 <= delay <= min(8.0, 0.5 * 2 ** n)


def test_decorrelated_jitter_stays_between_initial_and_max():
    rng = random.Random(2)
    b = BackoffPolicy(initial_s=0.2, max_s=5.0, jitter=DECORRELATED_JITTER).start(rng=rng.random)
    delays = [b.next_delay() for _ in range(500)]
    assert all(0.2 <= d <= 5.0 for d in delays)
    assert max(delays) > 4.0  # it does grow to the max
    first = BackoffPolicy(initial_s=0.2, max_s=5.0, jitter=DECORRELATED_JITTER).start(
        rng=lambda: 1.0)
    assert [round(first.next_delay(), 6) for _ in range(4)] == [0.6, 1.8, 5.0, 5.0]


def test_retry_after_is_waited_at_least_and_capped():
    policy = BackoffPolicy(initial_s=0.5, max_s=2.0, max_retry_after_s=60.0)
    b = policy.start(rng=lambda: 0.0)
    assert b.next_delay(retry_after=7.0) == 7.0
    assert b.next_delay(retry_after=0.1) == 0.1  # jitter drew 0: the server's ask wins
    assert b.next_delay(retry_after=600.0) == 60.0
    assert policy.start(rng=lambda: 1.0).next_delay(retry_after=0.2) == 0.5


def test_budget_bounds_the_total_wait_with_a_fake_clock():
    clock = FakeClock()
    b = BackoffPolicy(initial_s=1.0, max_s=4.0, max_elapsed_s=20.0).start(rng=lambda: 1.0,
                                                                           clock=clock)
    waited = []
    while (delay := b.next_delay()) is not None:
        waited.append(delay)
        clock.now += delay
    assert waited == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]  # 19 s; another 4 would pass 20
    assert b.elapsed() == sum(waited) <= 20.0 and b.retries == 6


def test_retry_after_past_the_budget_gives_up_instead_of_retrying_early():
    clock = FakeClock()
    b = BackoffPolicy(max_elapsed_s=60.0).start(rng=lambda: 0.0, clock=clock)
    assert b.next_delay(retry_after=30.0) == 30.0
    clock.now += 30.0
    assert b.next_delay(retry_after=31.0) is None


def test_bad_policy_is_refused():
    with pytest.raises(ValueError):
        BackoffPolicy(jitter="none")
    with pytest.raises(ValueError):
        BackoffPolicy(initial_s=-1)
