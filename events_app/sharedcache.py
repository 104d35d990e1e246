"""The shared cache (Redis with REDIS_URL, else per process) as a best-effort helper: no call can fail a request.

Rate limits, the failed-authentication counts and the metrics figures live in
Django's cache. Each helper here answers a fallback when the cache fails (`None`,
nothing, `False`: the caller's "unknown"), counts the failure in
`events_cache_errors_total{operation}` and logs it at most once a minute per
process. After a failure the cache is left alone for RETRY_SECONDS, so a Redis that
hangs costs one timeout per process per second rather than one per request, and
the process carries on without it: no rate limit.

`count` is one round trip to Redis (SET NX EX and INCR, pipelined) where Django's
`add` + `incr` take three; `get_many` is one MGET.
"""

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

from events_app import metrics
from events_app.logs import LogThrottle

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_SECONDS = 1.0
_log_throttle = LogThrottle(60.0)
_lock = threading.Lock()
_down_until = 0.0


def _call(operation: str, function: Callable[[], T], fallback: T) -> T:
    """Return `function()`, or `fallback` if the cache fails or failed less than RETRY_SECONDS ago."""
    global _down_until
    if _down_until and time.time() < _down_until:
        return fallback
    try:
        return function()
    except Exception as exc:  # any failure of the cache (connection, timeout, protocol) fails open
        with _lock:
            _down_until = time.time() + RETRY_SECONDS
        metrics.cache_error(operation)
        held = _log_throttle.due()
        if held is not None:
            logger.warning(
                "shared cache unavailable (%s on %s), carrying on without it: no rate limits"
                " (%d more failures since the last line)",
                exc.__class__.__name__,
                operation,
                held,
            )
        return fallback


def forget_failures() -> None:
    """Try the cache again on the next call (tests; after an operator fixed Redis nothing is needed)."""
    global _down_until
    _down_until = 0.0
    _log_throttle.reset()


def get_many(keys: Iterable[str]) -> dict | None:
    """Return the values of the `keys` present, or None if the cache cannot say."""
    keys = list(keys)
    return _call("get_many", lambda: cache.get_many(keys), None)


def set(key: str, value: object, *, timeout: float) -> None:
    """Store `value` under `key` for `timeout` seconds, if the cache can."""
    _call("set", lambda: cache.set(key, value, timeout=timeout), None)


def add(key: str, value: object, *, timeout: float) -> bool | None:
    """Store `value` unless `key` exists; return True if stored, False if it existed, None if the cache cannot say."""
    return _call("add", lambda: cache.add(key, value, timeout=timeout), None)


def delete_many(keys: Iterable[str]) -> None:
    """Delete the `keys`, if the cache can."""
    keys = list(keys)
    _call("delete_many", lambda: cache.delete_many(keys), None)


def count(key: str, *, timeout: float) -> int | None:
    """Add one to the counter `key` (made, expiring in `timeout` seconds, if absent); return it, or None."""
    return _call("count", lambda: _count(key, timeout), None)


def _count(key: str, timeout: float) -> int:
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        # Django's incr checks that the key exists first: add + incr is three round trips.
        full_key = backend.make_and_validate_key(key)
        pipeline = backend._cache.get_client(full_key, write=True).pipeline(transaction=False)
        pipeline.set(full_key, 0, ex=max(1, math.ceil(timeout)), nx=True)
        pipeline.incr(full_key)
        return pipeline.execute()[1]
    backend.add(key, 0, timeout=timeout)
    try:
        return backend.incr(key)
    except ValueError:  # expired between add and incr
        backend.set(key, 1, timeout=timeout)
        return 1
