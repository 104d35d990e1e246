"""A circuit breaker for the forwarder: while the destination fails, server processes stop trying.

After EVENTS_BREAKER_FAILURES failed forwarder sends in a row the breaker opens for
EVENTS_BREAKER_COOLDOWN_SECONDS: requests store their events unleased and the
worker, which keeps trying with backoff, delivers them, so the forwarder neither
piles up events it cannot send nor makes them wait out a lease. When the cooldown
ends the next request hands its events to the forwarder again (half-open); a
success closes the breaker, a failure opens it again. A slow destination needs no
breaker: no request waits on it, and the forwarder's bounded queue sends the
overflow to the worker.

The state lives in the shared cache (events_app.sharedcache): shared by all
processes with Redis (REDIS_URL), per process otherwise. Each process reads it at
most once per STATE_SECONDS (one MGET) and keeps what it learnt meanwhile, so a
request costs no round trip for it, a success while the breaker is closed costs
none either, and with the cache lost each process carries on with its own breaker.
"""

import logging
import threading
import time
from dataclasses import dataclass

from events_app import conf, metrics, sharedcache

logger = logging.getLogger(__name__)

_FAILURES_KEY = "events:breaker:failures"
_OPEN_UNTIL_KEY = "events:breaker:open_until"
# Another process's opening reaches this one within this time: well inside a cooldown.
STATE_SECONDS = 1.0


@dataclass(frozen=True)
class _State:
    read_at: float  # time.time(): tests move it with time-machine
    failures: int = 0
    open_until: float = 0.0


_lock = threading.Lock()
_state: _State | None = None


def _current(now: float) -> _State:
    """Return the breaker's state, read from the shared cache if this process's copy is older than STATE_SECONDS."""
    global _state
    state = _state
    if state is not None and 0 <= now - state.read_at < STATE_SECONDS:
        return state
    values = sharedcache.get_many([_FAILURES_KEY, _OPEN_UNTIL_KEY])
    if values is None:  # the cache is lost: go on with what this process knows
        state = _State(now, state.failures, state.open_until) if state is not None else _State(now)
    else:
        state = _State(now, values.get(_FAILURES_KEY) or 0, values.get(_OPEN_UNTIL_KEY) or 0.0)
    _remember(state)
    return state


def _remember(state: _State | None) -> None:
    global _state
    with _lock:
        _state = state


def forget_state() -> None:
    """Forget this process's copy of the state, so the next call reads the shared cache (tests)."""
    _remember(None)


def forwarding_allowed() -> bool:
    """Return True unless the breaker is open."""
    now = time.time()
    return _current(now).open_until <= now


def record_success() -> None:
    """Close the breaker after a send that the destination accepted."""
    now = time.time()
    state = _current(now)
    if state.failures or state.open_until:
        sharedcache.delete_many([_FAILURES_KEY, _OPEN_UNTIL_KEY])
        logger.info("destination circuit closed")
        _remember(_State(now))


def record_failure() -> None:
    """Count a failed forwarder send; open the breaker after too many in a row."""
    cooldown = conf.breaker_cooldown_seconds()
    now = time.time()
    state = _current(now)
    failures = sharedcache.count(_FAILURES_KEY, timeout=cooldown * 10)
    if failures is None:  # the cache is lost: this process counts alone
        failures = state.failures + 1
    if failures < conf.breaker_failures():
        _remember(_State(now, failures, state.open_until))
        return
    sharedcache.set(_OPEN_UNTIL_KEY, now + cooldown, timeout=cooldown)
    sharedcache.delete_many([_FAILURES_KEY])
    _remember(_State(now, 0, now + cooldown))
    logger.warning("destination circuit open for %.0f s after %d failed sends", cooldown, failures)
    metrics.breaker_opened()
