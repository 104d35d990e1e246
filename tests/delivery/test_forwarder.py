"""The per-process forwarder: batching across requests, the lease it stores rows under, its bound and thread."""

import threading
from datetime import timedelta

import orjson
import pytest
import time_machine
from django.core.cache import cache
from django.utils import timezone

from events_app.delivery import engine
from events_app.delivery import forwarder as forwarder_module
from events_app.delivery.destinations import firehose
from events_app.delivery.destinations.base import Limits
from events_app.delivery.destinations.firehose import FirehoseDestination
from events_app.delivery.policies import forwarder_policy
from events_app.models import DeliveryAttempt, DeliveryState, Event
from tests.support.delivery import PutRecordBatchSpy, read_s3_lines
from tests.support.forwarding import forwarder_fixture  # noqa: F401 (the forwarder fixture)


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()  # the breaker's state
    yield
    cache.clear()


def test_one_call_carries_the_events_of_many_single_event_requests(api, forwarder, moto_firehose, make_install):
    spy = PutRecordBatchSpy(firehose.get_client(policy=forwarder_policy()))
    events = [make_install(player_id=f"p{i}") for i in range(50)]

    for event in events:
        assert forwarder.post(api, "/v1/events", event, flush=False).status_code == 202
    assert forwarder.queue.queued == 50
    counts = forwarder.queue.flush()

    assert (counts.delivered, counts.calls, counts.records) == (50, 1, 1)
    assert len(spy.calls) == 1
    assert sorted(orjson.loads(line)["event_id"] for line in read_s3_lines(moto_firehose)) == sorted(
        e["event_id"] for e in events
    )
    assert set(Event.objects.values_list("delivery_state", flat=True)) == {DeliveryState.DELIVERED}
    assert Event.objects.filter(claim_token__isnull=False).count() == 0
    assert DeliveryAttempt.objects.count() == 50


def test_rows_handed_to_the_forwarder_are_leased_so_the_worker_leaves_them_alone(api, forwarder, make_install):
    forwarder.post(api, "/v1/events/batch", {"events": [make_install() for _ in range(3)]}, flush=False)

    assert set(Event.objects.values_list("claim_token", flat=True)) == {forwarder.queue.token}
    assert engine.claim_due(limit=10)[1] == []
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        assert len(engine.claim_due(limit=10)[1]) == 3  # the process died: the worker takes over


def test_a_rolled_back_request_hands_nothing_to_the_forwarder(
    game_key, forwarder, make_install, django_capture_on_commit_callbacks
):
    from django.db import transaction

    from events_app.ingest.service import ingest_events

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        ingest_events(api_key=game_key[0], raw_events=[make_install()], received_at=timezone.now())
        raise RuntimeError("the outer transaction fails after the insert")

    assert forwarder.queue.queued == 0
    assert Event.objects.count() == 0


def test_duplicates_are_not_forwarded_twice(api, forwarder, moto_firehose, make_install):
    event = make_install()

    forwarder.post(api, "/v1/events", event, flush=False)
    forwarder.post(api, "/v1/events", event, flush=False)

    assert forwarder.queue.queued == 1


def test_a_full_forwarder_leaves_new_events_to_the_worker_unleased(api, forwarder, settings, make_install):
    settings.EVENTS_FORWARD_MAX_QUEUED = 2
    forwarder.post(api, "/v1/events/batch", {"events": [make_install(), make_install()]}, flush=False)

    forwarder.post(api, "/v1/events", make_install(player_id="late"), flush=False)

    assert forwarder.queue.queued == 2
    late = Event.objects.get(player_id="late")
    assert (late.claim_token, late.claimed_until) == (None, None)
    assert len(engine.claim_due(limit=10)[1]) == 1


def test_events_the_forwarder_kept_past_half_their_lease_go_to_the_worker_unsent(
    api, forwarder, moto_firehose, make_install
):
    forwarder.post(api, "/v1/events", make_install(), flush=False)

    with time_machine.travel(timezone.now() + timedelta(seconds=31)):
        counts = forwarder.queue.flush()

    assert (counts.calls, counts.deferred) == (0, 1)
    event = Event.objects.get()
    assert (event.delivery_state, event.claim_token) == (DeliveryState.PENDING, None)
    assert read_s3_lines(moto_firehose) == []


def test_a_flush_takes_at_most_one_calls_worth_of_the_queue(
    game_key, forwarder, moto_firehose, make_install, django_capture_on_commit_callbacks
):
    from events_app.ingest.service import ingest_events

    small = type("Small", (FirehoseDestination,), {"limits": Limits(1000 * 1024, 500, 4000, 5120)})()
    queue = forwarder_module.Forwarder(threaded=False, destination=small)
    forwarder_module._process_forwarder = queue
    with django_capture_on_commit_callbacks(execute=True):
        ingest_events(api_key=game_key[0], raw_events=[make_install() for _ in range(30)], received_at=timezone.now())

    batch = queue._take()

    assert 0 < len(batch) < 30
    assert sum(item.size for item in batch) <= 4000
    assert queue.queued == 30 - len(batch)


def test_the_thread_sends_after_the_delay_without_a_flush(transactional_db, settings, moto_firehose, make_install):
    from events_app.api.keys import issue_api_key
    from events_app.ingest.service import ingest_events

    settings.EVENTS_INLINE_DELIVERY = True
    settings.EVENTS_FORWARD_MAX_DELAY_MS = 50
    api_key, _ = issue_api_key(game_slug="threaded")
    queue = forwarder_module.Forwarder()
    forwarder_module._process_forwarder = queue
    sent = threading.Event()
    original = queue._send

    def send_and_tell(batch):
        counts = original(batch)
        sent.set()
        return counts

    queue._send = send_and_tell
    try:
        ingest_events(api_key=api_key, raw_events=[make_install() for _ in range(5)], received_at=timezone.now())
        assert sent.wait(timeout=30)
    finally:
        queue.stop()
        forwarder_module._process_forwarder = None

    assert queue.totals.delivered == 5
    assert len(read_s3_lines(moto_firehose)) == 5


def test_stop_sends_what_is_queued_before_the_process_exits(transactional_db, settings, moto_firehose, make_install):
    from events_app.api.keys import issue_api_key
    from events_app.ingest.service import ingest_events

    settings.EVENTS_INLINE_DELIVERY = True
    settings.EVENTS_FORWARD_MAX_DELAY_MS = 60_000  # never by the delay
    api_key, _ = issue_api_key(game_slug="stopping")
    queue = forwarder_module.Forwarder()
    forwarder_module._process_forwarder = queue
    try:
        ingest_events(api_key=api_key, raw_events=[make_install() for _ in range(4)], received_at=timezone.now())
        queue.stop()
    finally:
        forwarder_module._process_forwarder = None

    assert queue.totals.delivered == 4
    assert Event.objects.filter(delivery_state=DeliveryState.DELIVERED).count() == 4


def test_forwarding_off_stores_rows_for_the_worker_and_starts_no_forwarder(api, settings, make_install):
    settings.EVENTS_INLINE_DELIVERY = False
    forwarder_module._process_forwarder = None

    api.post("/v1/events", make_install(), format="json")

    assert forwarder_module._process_forwarder is None
    assert Event.objects.get().claim_token is None


def test_warm_up_builds_the_forwarders_client_before_the_first_request(settings):
    from events_app.delivery.destinations import aws

    settings.EVENTS_INLINE_DELIVERY = True
    aws.client.cache_clear()

    forwarder_module.warm_up()

    assert aws.client.cache_info().currsize == 1
    settings.EVENTS_INLINE_DELIVERY = False
    aws.client.cache_clear()
    forwarder_module.warm_up()
    assert aws.client.cache_info().currsize == 0
