"""boto3 clients for the destinations, one per service and policy, built once per process."""

import functools

import boto3
from botocore.config import Config

from events_app import conf
from events_app.delivery.policies import SendPolicy


def client_for(service: str, policy: SendPolicy):
    """Return the cached client of `service` with the timeouts and retries of `policy`.

    Both modes set the retry mode explicitly because the botocore default depends on
    its version.
    """
    return client(
        service,
        conf.aws_region(),
        conf.aws_endpoint_url(),
        policy.connect_timeout,
        policy.read_timeout,
        policy.max_attempts,
    )


@functools.lru_cache(maxsize=16)
def client(
    service: str, region: str, endpoint_url: str | None, connect_timeout: float, read_timeout: float, attempts: int
):
    # A session per client: boto3's default session is not safe to share across threads.
    session = boto3.session.Session()
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": attempts},
        max_pool_connections=4,
    )
    return session.client(service, region_name=region, endpoint_url=endpoint_url, config=config)


def setup_client(service: str):
    """Return a plain client for one-off setup calls (ensure_firehose)."""
    return boto3.session.Session().client(service, region_name=conf.aws_region(), endpoint_url=conf.aws_endpoint_url())
