"""Send policies: the timeouts and retries of each kind of sender's destination calls, named in one place."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SendPolicy:
    """Timeouts and retries of one sender's destination calls (`name` labels its metrics)."""

    name: str
    connect_timeout: float
    read_timeout: float
    max_attempts: int  # per call, botocore's own retries included


def worker_policy() -> SendPolicy:
    """Return the policy of `deliver_events` (relay and retries): patient timeouts, botocore's retries on top of ours.

    Nobody waits on it: a slow call delays the relay, never a request.
    """
    return SendPolicy(name="worker", connect_timeout=5.0, read_timeout=30.0, max_attempts=3)
