"""Reconversion: purchases stored without a rate get their base amount once rates arrive, and are sent again."""

import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import timezone

from events_app import conf
from events_app.delivery import engine, resend, retry
from events_app.delivery.destinations.firehose import FirehoseDestination
from events_app.delivery.reconvert import ReconvertCounts, reconvert_missing
from events_app.ingest.service import ingest_events
from events_app.models import DeliveryIssue, DeliveryState, Event, IssueState
from events_app.money import currency
from events_app.money.rates import import_rates
from tests.support.delivery import delivery_state

pytestmark = pytest.mark.django_db

SAMPLE = Path(django_settings.BASE_DIR) / "events_app" / "data" / "eurofxref-sample.csv"


@pytest.fixture(autouse=True)
def _fresh_rate_cache():
    currency.clear_rate_cache()
    yield
    currency.clear_rate_cache()


def purchase(*, price: str, code: str, occurred_at: str) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "purchase",
        "player_id": "player-1",
        "occurred_at": occurred_at,
        "properties": {"transaction_id": f"txn-{uuid.uuid4()}", "product_id": "gems", "price": price, "currency": code},
    }


def ingest(game_key, *events) -> list[Event]:
    outcome = ingest_events(api_key=game_key[0], raw_events=list(events), received_at=timezone.now())
    assert outcome.rejected == 0, outcome.results
    return [Event.objects.get(event_id=event["event_id"]) for event in events]


def kwd_rates(tmp_path: Path, *days: str) -> None:
    """Import 1 USD = 0.3070 KWD on each day (the ECB publishes no KWD)."""
    path = tmp_path / "kwd.csv"
    path.write_text("date,currency,rate\n" + "".join(f"{day},KWD,0.3070\n" for day in days))
    import_rates(path=path)


def s3_lines(s3) -> list[dict]:
    lines = []
    for item in s3.list_objects_v2(Bucket=conf.s3_bucket()).get("Contents", []):
        body = s3.get_object(Bucket=conf.s3_bucket(), Key=item["Key"])["Body"].read()
        lines.extend(orjson.loads(line) for line in body.splitlines())
    return lines


def test_reconvert_fills_the_base_amount_and_sends_the_corrected_record_again(game_key, moto_firehose, tmp_path):
    (event,) = ingest(game_key, purchase(price="1.250", code="KWD", occurred_at="2026-01-12T10:00:00Z"))
    assert engine.deliver_due().delivered == 1
    kwd_rates(tmp_path, "2026-01-12")

    counts = reconvert_missing()

    assert (counts.converted, counts.still_missing) == (1, 0)
    event.refresh_from_db()
    # 1.250 KWD x (1 / 0.3070) = 4.0716... USD
    assert (event.revenue_base, event.base_currency, event.fx_rate) == (Decimal("4.07"), "USD", Decimal("3.25732899"))
    assert event.fx_date == date(2026, 1, 12)
    assert {key: event.payload[key] for key in currency.BASE_FIELDS} == {
        "revenue_base": "4.07",
        "base_currency": "USD",
        "fx_rate": "3.25732899",
        "fx_date": "2026-01-12",
    }
    assert delivery_state(event) == DeliveryState.PENDING
    issue = DeliveryIssue.objects.get(event_id=event.pk)
    assert (issue.state, issue.payload) == (IssueState.PENDING, event.payload)  # the corrected line, to send
    assert issue.next_attempt_at <= timezone.now()
    assert (issue.attempts, issue.claim_token, issue.claimed_until) == (0, None, None)
    assert issue.resent_at is not None

    assert engine.deliver_due().delivered == 1
    first, second = sorted(s3_lines(moto_firehose), key=lambda line: line["emitted_at"])
    assert first["event_id"] == second["event_id"] == str(event.event_id)
    assert (first["revenue_base"], second["revenue_base"]) == (None, "4.07")
    assert second["emitted_at"] > first["emitted_at"]
    assert currency.missing_rate_count() == 0


def test_reconvert_leaves_what_still_has_no_rate_and_walks_past_it_batch_by_batch(game_key, tmp_path):
    days = ["2026-01-05", "2026-01-06", "2026-01-07", "2026-01-08", "2026-01-09"]
    rows = ingest(game_key, *[purchase(price="1", code="KWD", occurred_at=f"{day}T10:00:00Z") for day in days])
    kwd_rates(tmp_path, "2026-01-06", "2026-01-08")

    counts = reconvert_missing(batch_size=1)

    # Jan 6 and 8 have their own rate, Jan 7 and 9 fall back to the day before; Jan 5 has none.
    assert (counts.converted, counts.still_missing) == (4, 1)
    fx_dates = {str(row.event_id): row.fx_date for row in Event.objects.all()}
    assert [fx_dates[str(row.event_id)] for row in rows] == [
        None,
        date(2026, 1, 6),
        date(2026, 1, 6),
        date(2026, 1, 8),
        date(2026, 1, 8),
    ]
    assert reconvert_missing() == ReconvertCounts(converted=0, still_missing=1)


def test_reconvert_does_not_touch_converted_purchases_or_installs(game_key, moto_firehose):
    import_rates(path=SAMPLE)
    ingest(game_key, purchase(price="4.99", code="EUR", occurred_at="2026-01-09T10:00:00Z"))
    install = {
        "event_id": str(uuid.uuid4()),
        "event_type": "install",
        "player_id": "p",
        "occurred_at": "2026-01-09T10:00:00Z",
    }
    ingest(game_key, install)
    engine.deliver_due()
    before = list(Event.objects.order_by("pk").values())

    assert reconvert_missing() == ReconvertCounts(converted=0, still_missing=0)
    assert list(Event.objects.order_by("pk").values()) == before


class ReconvertMidSend(FirehoseDestination):
    """Firehose, with the rates arriving and reconvert running while the first call is on its way."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.converted: list[int] = []

    def send(self, records, *, policy):
        if not self.converted:
            kwd_rates(self.tmp_path, "2026-01-12")
            self.converted.append(reconvert_missing().converted)
        return super().send(records, policy=policy)


def test_reconvert_takes_the_claim_of_a_retry_sender_holding_the_old_line(game_key, moto_firehose, tmp_path):
    (event,) = ingest(game_key, purchase(price="1.250", code="KWD", occurred_at="2026-01-12T10:00:00Z"))
    assert engine.deliver_due().delivered == 1
    resend.resend_event(event=event, user=None)  # due again: the retry worker will send the line without a base
    destination = ReconvertMidSend(tmp_path)

    engine.deliver_due(destination=destination)  # the old line goes out while reconvert corrects it

    assert destination.converted == [1]
    assert delivery_state(event) == DeliveryState.PENDING  # its outcome was not recorded: no longer its claim
    assert engine.deliver_due().delivered == 1
    newest = max(s3_lines(moto_firehose), key=lambda line: line["emitted_at"])
    assert newest["revenue_base"] == "4.07"
    assert delivery_state(event) == DeliveryState.DELIVERED


def test_reconvert_sends_the_corrected_line_of_an_event_the_relay_is_sending_right_now(
    game_key, moto_firehose, tmp_path
):
    (event,) = ingest(game_key, purchase(price="1.250", code="KWD", occurred_at="2026-01-12T10:00:00Z"))
    destination = ReconvertMidSend(tmp_path)

    # The relay sends the line without a base amount; the retry worker, in the same pass, the corrected one.
    assert engine.deliver_due(destination=destination).delivered == 2

    assert destination.converted == [1]
    lines = sorted(s3_lines(moto_firehose), key=lambda line: line["emitted_at"])
    assert [line["revenue_base"] for line in lines] == [None, "4.07"]
    assert delivery_state(event) == DeliveryState.DELIVERED
    assert engine.deliver_due().claimed == 0


def test_reconvert_requeues_dead_events_with_fresh_attempts(game_key, tmp_path, settings):
    (event,) = ingest(game_key, purchase(price="1.250", code="KWD", occurred_at="2026-01-12T10:00:00Z"))
    DeliveryIssue.objects.create(
        event=event,
        game=event.game,
        received_at=event.received_at,
        payload=event.payload,
        state=IssueState.DEAD,
        attempts=conf.max_attempts(),
        last_error="boom",
        opened_at=timezone.now(),
    )
    kwd_rates(tmp_path, "2026-01-12")

    reconvert_missing(now=timezone.now() - timedelta(seconds=1))

    issue = DeliveryIssue.objects.get(event_id=event.pk)
    assert (issue.state, issue.attempts, issue.last_error) == (IssueState.PENDING, 0, "")
    assert issue.payload["revenue_base"] == "4.07"
    assert delivery_state(event) == DeliveryState.PENDING
    assert retry.claim_due(limit=10)[1][0].event_id == event.pk


def test_reconvert_command_reports_counts(game_key, tmp_path, capsys):
    ingest(
        game_key,
        purchase(price="1.250", code="KWD", occurred_at="2026-01-12T10:00:00Z"),
        purchase(price="1", code="KWD", occurred_at="2025-01-12T10:00:00Z"),
    )
    kwd_rates(tmp_path, "2026-01-12")

    call_command("reconvert")

    assert capsys.readouterr().out.strip() == "converted=1 still_missing=1"
