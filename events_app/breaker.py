"""A circuit breaker for the forwarder: while the destination fails, server processes stop trying.

After EVENTS_BREAKER_FAILURES failed forwarder sends in a row the breaker opens for
EVENTS_BREAKER_COOLDOWN_SECONDS: requests store their events unleased and the
worker, which keeps trying with backoff, delivers them, so the forwarder neither
piles up events it cannot send nor makes them wait out a lease. When the cooldown
ends the next request hands its events to the forwarder again (half-open); a
success closes the breaker, a failure opens it again. A slow destination needs no
breaker: no request waits on it, and the forwarder's bounded queue sends the
overflow to the worker. The state lives in Django's cache: shared by all processes
with Redis (REDIS_URL), per process otherwise.
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache

from . import metrics

logger = logging.getLogger(__name__)

_FAILURES_KEY = "events:breaker:failures"
_OPEN_UNTIL_KEY = "events:breaker:open_until"


def forwarding_allowed() -> bool:
    """Return True unless the breaker is open."""
    return (cache.get(_OPEN_UNTIL_KEY) or 0) <= time.time()


def record_success() -> None:
    """Close the breaker after a send that the destination accepted."""
    if cache.get(_FAILURES_KEY) or cache.get(_OPEN_UNTIL_KEY):
        cache.delete_many([_FAILURES_KEY, _OPEN_UNTIL_KEY])
        logger.info("destination circuit closed")


def record_failure() -> None:
    """Count a failed forwarder send; open the breaker after too many in a row."""
    cooldown = settings.EVENTS_BREAKER_COOLDOWN_SECONDS
    cache.add(_FAILURES_KEY, 0, timeout=cooldown * 10)
    try:
        failures = cache.incr(_FAILURES_KEY)
    except ValueError:  # expired between add and incr
        failures = 1
    if failures >= settings.EVENTS_BREAKER_FAILURES:
        cache.set(_OPEN_UNTIL_KEY, time.time() + cooldown, timeout=cooldown)
        cache.delete(_FAILURES_KEY)
        logger.warning("destination circuit open for %.0f s after %d failed sends", cooldown, failures)
        metrics.breaker_opened()
