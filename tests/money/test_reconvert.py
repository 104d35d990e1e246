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
from events_app.delivery import engine
from events_app.delivery.policies import worker_policy
from events_app.ingest.service import ingest_events
from events_app.models import AttemptOutcome, DeliveryState, Event
from events_app.money import currency
from events_app.money.rates import import_rates

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

    counts = currency.reconvert_missing()

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
    assert event.delivery_state == DeliveryState.PENDING
    assert event.next_attempt_at <= timezone.now()
    assert (event.attempts, event.claim_token, event.claimed_until) == (0, None, None)
    assert event.attempts_log.first().outcome == AttemptOutcome.RESEND

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

    counts = currency.reconvert_missing(batch_size=1)

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
    assert currency.reconvert_missing() == currency.ReconvertCounts(converted=0, still_missing=1)


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

    assert currency.reconvert_missing() == currency.ReconvertCounts(converted=0, still_missing=0)
    assert list(Event.objects.order_by("pk").values()) == before


def test_reconvert_takes_the_claim_of_a_sender_holding_the_old_line(game_key, moto_firehose, tmp_path):
    ingest(game_key, purchase(price="1.250", code="KWD", occurred_at="2026-01-12T10:00:00Z"))
    token, claimed = engine.claim_due(limit=10)  # a sender has the line without a base amount
    kwd_rates(tmp_path, "2026-01-12")

    assert currency.reconvert_missing().converted == 1
    engine.deliver_claimed(events=claimed, claim_token=token, policy=worker_policy())  # the old line goes out

    event = Event.objects.get()
    assert event.delivery_state == DeliveryState.PENDING  # its outcome was not recorded: no longer its claim
    assert engine.deliver_due().delivered == 1
    newest = max(s3_lines(moto_firehose), key=lambda line: line["emitted_at"])
    assert newest["revenue_base"] == "4.07"


def test_reconvert_requeues_dead_events_with_fresh_attempts(game_key, tmp_path, settings):
    (event,) = ingest(game_key, purchase(price="1.250", code="KWD", occurred_at="2026-01-12T10:00:00Z"))
    Event.objects.filter(pk=event.pk).update(
        delivery_state=DeliveryState.DEAD, attempts=conf.max_attempts(), next_attempt_at=None, last_error="boom"
    )
    kwd_rates(tmp_path, "2026-01-12")

    currency.reconvert_missing(now=timezone.now() - timedelta(seconds=1))

    event.refresh_from_db()
    assert (event.delivery_state, event.attempts, event.last_error) == (DeliveryState.PENDING, 0, "")
    assert engine.claim_due(limit=10)[1][0].pk == event.pk


def test_reconvert_command_reports_counts(game_key, tmp_path, capsys):
    ingest(
        game_key,
        purchase(price="1.250", code="KWD", occurred_at="2026-01-12T10:00:00Z"),
        purchase(price="1", code="KWD", occurred_at="2025-01-12T10:00:00Z"),
    )
    kwd_rates(tmp_path, "2026-01-12")

    call_command("reconvert")

    assert capsys.readouterr().out.strip() == "converted=1 still_missing=1"
