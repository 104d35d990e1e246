"""Rate limiting per API key: a fixed-window counter in Django's cache (Redis when REDIS_URL is set)."""

import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

_PERIODS = {"s": 1, "m": 60, "h": 3600}


def parse_rate(rate: str) -> tuple[int, int] | None:
    """Return (requests, seconds) for a rate such as "2000/s" or "100000/m"; None for "0" or "" (no limit)."""
    if not rate or rate.strip() == "0":
        return None
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip()[0].lower()]


class ApiKeyRateThrottle(BaseThrottle):
    """Allow at most EVENTS_RATE_LIMIT requests per API key per window; 429 with Retry-After beyond.

    The counter is atomic in Redis, so every server process shares one budget per
    key; with the default in-process cache each process counts on its own.
    """

    def allow_request(self, request, view) -> bool:
        limit = parse_rate(settings.EVENTS_RATE_LIMIT)
        if limit is None or request.auth is None:
            return True
        allowed, period = limit
        now = time.time()
        window = int(now // period)
        key = f"events:rate:{request.auth.pk}:{window}"
        cache.add(key, 0, timeout=period + 1)
        try:
            used = cache.incr(key)
        except ValueError:  # the window's key expired between add and incr
            used = 1
        self._wait = (window + 1) * period - now
        return used <= allowed

    def wait(self) -> float:
        return self._wait
