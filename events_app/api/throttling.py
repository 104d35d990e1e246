"""Rate limiting per API key: a fixed-window counter in the shared cache (Redis when REDIS_URL is set)."""

import time

from rest_framework.throttling import BaseThrottle

from events_app import conf, sharedcache

_PERIODS = {"s": 1, "m": 60, "h": 3600}


def parse_rate(rate: str) -> tuple[int, int] | None:
    """Return (requests, seconds) for a rate such as "2000/s" or "100000/m"; None for "0" or "" (no limit)."""
    if not rate or rate.strip() == "0":
        return None
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip()[0].lower()]


def count_in_window(name: str, *, period: int) -> tuple[int | None, float]:
    """Count one more occasion of `name` in the current fixed window of `period` seconds.

    Returns the count so far in the window (None if the shared cache cannot say) and
    the seconds until the window ends, for Retry-After.
    """
    now = time.time()
    window = int(now // period)
    used = sharedcache.count(f"{name}:{window}", timeout=period + 1)
    return used, (window + 1) * period - now


class ApiKeyRateThrottle(BaseThrottle):
    """Allow at most EVENTS_RATE_LIMIT requests per API key per window; 429 with Retry-After beyond.

    The counter is atomic in Redis, so every server process shares one budget per
    key, for one round trip per request; with the default in-process cache each
    process counts on its own. Without a cache to count in, requests are let through.
    """

    def allow_request(self, request, view) -> bool:
        limit = parse_rate(conf.rate_limit())
        if limit is None or request.auth is None:
            return True
        allowed, period = limit
        used, self._wait = count_in_window(f"events:rate:{request.auth.pk}", period=period)
        return used is None or used <= allowed

    def wait(self) -> float:
        return self._wait
