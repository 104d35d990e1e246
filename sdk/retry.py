"""When to send a batch again: capped exponential backoff with full jitter, Retry-After, and a time budget."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How a Tracker retries a batch after a network error, a 429 or a 5xx.

    The n-th retry waits a random time between 0 and min(cap, base * 2**(n-1))
    seconds ("full jitter": players who lost the network together do not all come
    back in the same second), or what the server's Retry-After asks when that is
    longer. A batch is given up once the next wait would end more than `budget`
    seconds after its first attempt (or after the sender last split it in two,
    looking for an event the tracker fails on); with persistence on, it stays in
    the spool and is tried again later instead.

    A refused API key (401, 403) is no reason to give events up, nor to knock often:
    the n-th refusal in a row waits between half and all of
    min(auth_cap, auth_base * 2**(n-1)) seconds, with the events kept meanwhile.
    """

    base: float = 0.5
    cap: float = 30.0
    budget: float = 60.0
    random: Callable[[], float] = random.random  # tests pass lambda: 1.0 for the upper bound
    auth_base: float = 30.0
    auth_cap: float = 600.0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.budget < 0:
            raise ValueError("RetryPolicy needs 0 < base <= cap and budget >= 0")
        if self.auth_base <= 0 or self.auth_cap < self.auth_base:
            raise ValueError("RetryPolicy needs 0 < auth_base <= auth_cap")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Return the seconds to wait before retry number `retry` (1 for the first retry)."""
        ceiling = min(self.cap, self.base * 2.0 ** min(retry - 1, 64))
        delay = ceiling * self.random()
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def auth_delay(self, refusals: int) -> float:
        """Return the seconds to wait after the API key was refused `refusals` times in a row (1 the first time)."""
        ceiling = min(self.auth_cap, self.auth_base * 2.0 ** min(refusals - 1, 64))
        # Half fixed, half random: slow whatever the draw, yet players do not come back in step.
        return ceiling * (0.5 + 0.5 * self.random())
