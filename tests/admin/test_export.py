"""Export of the event list's current filter: NDJSON (the Firehose line) and CSV, streamed by keyset chunks."""

import csv
import io
from datetime import datetime, timedelta

import orjson
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from events_app.admin import export
from events_app.delivery.records import encode_line
from events_app.models import DeliveryState, Event
from tests.admin.helpers import EVENTS_URL, set_state, store
from tests.support.users import make_user

NDJSON_URL = reverse("admin:events_app_event_export", args=["ndjson"])
CSV_URL = reverse("admin:events_app_event_export", args=["csv"])


def download(client, url: str, query: str = "") -> bytes:
    response = client.get(url + query)
    assert response.status_code == 200, response
    assert response.streaming
    assert response["Content-Disposition"].startswith('attachment; filename="events-')
    return b"".join(response.streaming_content)


def test_ndjson_is_the_firehose_line_of_each_event_the_filter_shows(
    operator, game_key, other_game_key, make_install, make_purchase
):
    purchase, _ = store(game_key[0], [make_purchase(), make_install()])
    store(other_game_key[0], [make_purchase()])
    old = store(game_key[0], [make_purchase()])[0]
    Event.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=3))  # outside the 24 h default

    body = download(operator, NDJSON_URL, f"?game__id__exact={game_key[0].game_id}&event_type=purchase")

    (line,) = body.splitlines(keepends=True)
    record = orjson.loads(line)
    assert record["event_id"] == str(purchase.event_id)
    # Exactly the line a send would make (emitted_at is stamped per send; the export's time here).
    assert line == encode_line(purchase.payload, emitted_at=_parse(record["emitted_at"]))


def test_ndjson_sends_a_delivery_issues_copy_as_a_resend_would(operator, game_key, make_install):
    (event,) = store(game_key[0], [make_install()])
    set_state([event], DeliveryState.FAILED, payload={**event.payload, "app_version": "from-the-issue"})

    record = orjson.loads(download(operator, NDJSON_URL, "?delivery_state=failed"))

    assert record["app_version"] == "from-the-issue"


def test_csv_has_a_row_per_event_newest_first_with_its_delivery_state(operator, game_key, make_install, make_purchase):
    install, purchase, waiting = store(game_key[0], [make_install(), make_purchase(), make_install()])
    set_state([install], DeliveryState.DELIVERED)
    set_state([purchase], DeliveryState.DEAD)

    rows = list(csv.DictReader(io.StringIO(download(operator, CSV_URL).decode())))

    assert list(rows[0]) == list(export.CSV_COLUMNS)
    assert [row["event_id"] for row in rows] == [str(e.event_id) for e in (waiting, purchase, install)]
    assert [row["delivery_state"] for row in rows] == ["pending", "dead", "delivered"]
    assert (rows[1]["product_id"], rows[1]["price"], rows[1]["currency"]) == ("gem_pack_small", "4.99", "EUR")
    assert rows[1]["received_at"] == purchase.payload["received_at"]  # ISO 8601 UTC, as in the line
    assert rows[0]["game"] == "space-raiders" and rows[0]["revenue"] == ""


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_quoted(operator, game_key, make_install):
    store(game_key[0], [make_install(player_id="=HYPERLINK(1)"), make_install(player_id="-1+2")])

    rows = list(csv.DictReader(io.StringIO(download(operator, CSV_URL).decode())))

    assert [row["player_id"] for row in rows] == ["'-1+2", "'=HYPERLINK(1)"]


def test_an_export_reads_in_keyset_chunks_never_the_whole_match_at_once(operator, game_key, make_install, monkeypatch):
    events = store(game_key[0], [make_install(player_id=f"p{i}") for i in range(7)])
    monkeypatch.setattr(export, "CHUNK", 3)

    with CaptureQueriesContext(connection) as queries:
        body = download(operator, CSV_URL)

    chunk_reads = [q["sql"] for q in queries.captured_queries if "LIMIT 3" in q["sql"]]
    assert len(chunk_reads) == 3  # 3 + 3 + 1 rows, each query below the last id of the one before
    assert all("OFFSET" not in sql for sql in chunk_reads)
    assert len(body.decode().splitlines()) == 1 + len(events)


@pytest.mark.parametrize("query", ["?received=2y", "?before=abc", "?payload__contains=x"])
def test_an_export_of_a_query_string_the_list_refuses_is_refused_the_same_way(operator, game_key, query):
    response = operator.get(NDJSON_URL + query)

    assert response.status_code in (302, 400)
    if response.status_code == 302:
        assert response["Location"] == f"{EVENTS_URL}?e=1"


def test_an_unknown_export_format_is_not_found(operator, db):
    assert operator.get(reverse("admin:events_app_event_export", args=["xlsx"])).status_code == 404


def test_export_needs_the_event_view_permission(client, db):
    client.force_login(make_user("games-only", ["view_game"]))

    assert client.get(CSV_URL).status_code == 403


def test_the_list_offers_both_exports_of_its_current_filter(operator, game_key):
    page = operator.get(EVENTS_URL + "?event_type=purchase").content.decode()

    assert f'href="{NDJSON_URL}?event_type=purchase"' in page
    assert f'href="{CSV_URL}?event_type=purchase"' in page


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
