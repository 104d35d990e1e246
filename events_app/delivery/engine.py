"""One delivery pass: relay the next batch of every shard this process holds, then send the issues due for retry.

`deliver_events` runs passes in a loop (events_app.delivery.worker); tests and
`--once` call one at a time. A shard another process holds is left to it: this
process is its standby, and takes it over once that process's lock (PostgreSQL) or
lease (SQLite) is gone.
"""

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from events_app import conf, logstore
from events_app.delivery import relay, retry
from events_app.delivery.destinations.base import Destination, get_destination
from events_app.delivery.policies import SendPolicy, worker_policy
from events_app.delivery.sending import DeliveryCounts

logger = logging.getLogger(__name__)

# Who this process is when it holds a shard by lease (SQLite).
PROCESS_HOLDER = uuid.uuid4()


@dataclass
class DeliveryPass(DeliveryCounts):
    """The counts of one pass, and which shards had an outage, were held elsewhere, or had more to read."""

    outages: set[int] = field(default_factory=set)
    standby: set[int] = field(default_factory=set)
    relayed: int = 0  # events read past the cursors


def deliver_due(
    *,
    limit: int | None = None,
    shards: Iterable[int] | None = None,
    skip: Iterable[int] = (),
    destination: Destination | None = None,
    policy: SendPolicy | None = None,
) -> DeliveryPass:
    """Run one pass: a batch of each shard held (all by default, less `skip`), then one batch of due issues."""
    destination = destination or get_destination()
    policy = policy or worker_policy()
    result = DeliveryPass()
    skipped = set(skip)
    for shard in range(conf.relay_shards()) if shards is None else shards:
        if shard in skipped:
            continue
        if not logstore.hold_shard(shard=shard, holder=PROCESS_HOLDER):
            result.standby.add(shard)
            continue
        try:
            relayed = relay.relay_shard(shard=shard, destination=destination, policy=policy, limit=limit)
        except relay.LostShard:
            logger.warning("relay shard=%d moved by another process; this one stands by", shard)
            result.standby.add(shard)
            continue
        result.add(relayed.counts)
        result.relayed += relayed.read
        if relayed.outage:
            result.outages.add(shard)
    result.add(retry.retry_due(destination=destination, policy=policy, limit=limit))
    return result


def release_shards(shards: Iterable[int] | None = None) -> None:
    """Let go of the shards this process holds, so a standby takes them at once."""
    for shard in range(conf.relay_shards()) if shards is None else shards:
        logstore.release_shard(shard=shard, holder=PROCESS_HOLDER)
