"""Send policies: how each kind of sender calls the destination, named instead of steered by a boolean."""

import enum
from dataclasses import dataclass

from events_app import conf


class BreakerFeedback(enum.Enum):
    """What a sender's outcomes teach the circuit breaker."""

    # The forwarder's sends open the breaker when they fail and close it when they succeed.
    FAILURES_AND_SUCCESSES = "failures_and_successes"
    # The worker retries with backoff through any outage; only its successes count:
    # they are the probe that ends one.
    SUCCESSES_ONLY = "successes_only"


@dataclass(frozen=True)
class SendPolicy:
    """Timeouts and retries of one sender's destination calls, and what its outcomes tell the breaker.

    Whatever the policy, no call starts once less than half of the rows' lease is
    left, so another sender can never take over rows while a call for them is out.
    """

    name: str
    connect_timeout: float
    read_timeout: float
    max_attempts: int  # per call, botocore's own retries included
    breaker: BreakerFeedback


def forwarder_policy() -> SendPolicy:
    """Return the policy of the server processes' background forwarder.

    Nobody waits on it, but while it waits its queue grows: short timeouts and a
    single attempt, since a failed event is retried by the worker with backoff.
    """
    return SendPolicy(
        name="forwarder",
        connect_timeout=conf.forward_connect_timeout_seconds(),
        read_timeout=conf.forward_timeout_seconds(),
        max_attempts=1,
        breaker=BreakerFeedback.FAILURES_AND_SUCCESSES,
    )


def worker_policy() -> SendPolicy:
    """Return the policy of the delivery worker: patient timeouts, botocore's retries on top of its own backoff."""
    return SendPolicy(
        name="worker", connect_timeout=5.0, read_timeout=30.0, max_attempts=3, breaker=BreakerFeedback.SUCCESSES_ONLY
    )
