"""Retry waits: exponential backoff with full or decorrelated jitter, bounded by a maximum,
Retry-After honoured (at least that long, capped), and a total retry-time budget."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable

FULL_JITTER = "full"  # uniform(0, min(max, initial * 2**n))
DECORRELATED_JITTER = "decorrelated"  # min(max, uniform(initial, previous * 3))
JITTERS = (FULL_JITTER, DECORRELATED_JITTER)


@dataclass(frozen=True)
class BackoffPolicy:
    initial_s: float = 0.5
    max_s: float = 30.0
    jitter: str = FULL_JITTER
    max_retry_after_s: float = 300.0  # a server's Retry-After is honoured up to this
    max_elapsed_s: float | None = None  # total budget from start(); None = unbounded

    def __post_init__(self) -> None:
        if self.jitter not in JITTERS:
            raise ValueError(f"jitter must be one of {JITTERS}, not {self.jitter!r}")
        if self.initial_s < 0 or self.max_s < 0:
            raise ValueError("backoff initial_s and max_s must be >= 0")

    def start(self, *, rng: Callable[[], float] = random.random,
              clock: Callable[[], float] = time.monotonic) -> Backoff:
        """A fresh retry sequence; its time budget starts now (per `clock`)."""
        return Backoff(self, rng=rng, clock=clock)


class Backoff:
    """One retry sequence. next_delay() gives the next wait, or None when the budget is spent."""

    def __init__(self, policy: BackoffPolicy, *, rng: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.retries = 0
        self._rng = rng
        self._clock = clock
        self._started = clock()
        self._previous = policy.initial_s

    def elapsed(self) -> float:
        return self._clock() - self._started

    def jittered(self) -> float:
        """The next jittered exponential wait, ignoring Retry-After and the budget."""
        p = self.policy
        if p.jitter == FULL_JITTER:
            ceiling = min(p.max_s, p.initial_s * (2 ** min(self.retries, 62)))
            delay = ceiling * self._rng()
        else:
            low, high = p.initial_s, max(p.initial_s, self._previous * 3)
            delay = min(p.max_s, low + (high - low) * self._rng())
        self._previous = max(delay, p.initial_s)
        return delay

    def next_delay(self, retry_after: float | None = None) -> float | None:
        """Seconds to wait before the next retry: the jittered wait, or the server's Retry-After
        when longer (capped at max_retry_after_s). None when the budget is spent: the wait, or
        the server's Retry-After (never retried earlier than asked), would end past it."""
        delay = self.jittered()
        retry_after = retry_after if retry_after is not None and retry_after > 0 else 0.0
        delay = max(delay, min(retry_after, self.policy.max_retry_after_s))
        budget = self.policy.max_elapsed_s
        if budget is not None and self.elapsed() + max(delay, retry_after) > budget:
            return None
        self.retries += 1
        return delay
