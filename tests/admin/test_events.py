"""The event list and page: columns, filters, search, counts, detail, permissions, resends, hostile query strings."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from events_app.admin import EventAdmin, paginators
from events_app.delivery import engine
from events_app.delivery.resend import resend_events
from events_app.event_types import custom
from events_app.models import CallOutcome, DeliveryCall, DeliveryIssue, DeliveryState, Event, IssueState, PurchaseKey
from tests.admin.helpers import (
    EVENTS_URL,
    LEVEL_UP_SCHEMA,
    SLOW_DOWN,
    FailingDestination,
    accept_unknown_types,
    ad_impression,
    issue_of,
    make_event,
    relay_past,
    set_state,
    state_of,
    store,
)
from tests.support.users import make_user


def page_ids(response) -> set[int]:
    return {event.pk for event in response.context["cl"].result_list}


def dead_ids() -> set[int]:
    return set(DeliveryIssue.objects.filter(state=IssueState.DEAD).values_list("event_id", flat=True))


# -- the list -------------------------------------------------------------------------------------------------------


def test_event_list_shows_time_type_game_player_a_state_badge_and_attempts(operator, game_key, make_install):
    (event,) = store(game_key[0], [make_install(player_id="player-77")])
    set_state([event], DeliveryState.FAILED, attempts=3)

    response = operator.get(EVENTS_URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert "player-77" in html
    assert "space-raiders" in html
    assert '<span class="state-badge state-failed"' in html
    assert '<td class="field-attempts">3</td>' in html  # from the event's delivery issue
    assert "events_app/admin.css" in html


def test_event_list_counts_the_relays_one_call_as_one_attempt_and_none_while_pending(operator, game_key, make_install):
    delivered, pending = store(game_key[0], [make_install(player_id="sent"), make_install(player_id="waiting")])
    relay_past([delivered])

    html = operator.get(EVENTS_URL).content.decode()

    assert '<span class="state-badge state-delivered"' in html and '<span class="state-badge state-pending"' in html
    assert '<td class="field-attempts">1</td>' in html and '<td class="field-attempts">0</td>' in html
    assert '<td class="field-last_error_excerpt">-</td>' in html
    assert (state_of(delivered), state_of(pending)) == (DeliveryState.DELIVERED, DeliveryState.PENDING)


def test_failed_events_list_their_last_error_and_next_attempt(operator, game_key, make_install):
    failed, delivered = store(game_key[0], [make_install(), make_install()])
    error = "ServiceUnavailableException: " + "Slow down. " * 20
    set_state(
        [failed],
        DeliveryState.FAILED,
        attempts=2,
        last_error=error,
        next_attempt_at=datetime(2026, 11, 25, 15, 41, 7, tzinfo=UTC),
    )
    set_state([delivered], DeliveryState.DELIVERED)

    html = operator.get(EVENTS_URL).content.decode()

    assert f'<span class="last-error" title="{error}">{error[:47]}…</span>' in html
    assert '<td class="field-next_attempt">2026-11-25 15:41:07 UTC</td>' in html
    assert '<td class="field-last_error_excerpt">-</td>' in html  # the delivered one
    assert '<td class="field-next_attempt">-</td>' in html


def test_purchases_list_their_product_price_and_currency(operator, game_key, make_install, make_purchase):
    store(game_key[0], [make_purchase(), make_install()])

    html = operator.get(EVENTS_URL).content.decode()

    assert '<span class="product">gem_pack_small</span> <span class="price">4.99 EUR</span>' in html
    assert '<td class="field-purchase">-</td>' in html  # the install


def test_new_list_columns_add_no_query_per_row(operator, game_key, make_purchase, django_assert_max_num_queries):
    events = store(game_key[0], [make_purchase() for _ in range(30)])
    set_state(events, DeliveryState.FAILED, attempts=1, last_error="throttled", next_attempt_at=timezone.now())

    with django_assert_max_num_queries(26):  # the issue's columns come in the list's own query, whatever the page size
        response = operator.get(EVENTS_URL)
    assert response.content.decode().count('class="product"') == 30


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"event_type": "purchase"}, {"purchase"}),
        ({"delivery_state": "dead"}, {"dead-install"}),
        ({"platform": "web"}, {"web-install"}),
        ({"currency": "GBP"}, {"purchase"}),
    ],
)
def test_event_list_filters_by_type_state_platform_and_currency(
    operator, game_key, make_install, make_purchase, query, expected
):
    plain, dead, web = store(game_key[0], [make_install(), make_install(), make_install(platform="web")])
    purchase = make_purchase()
    purchase["properties"]["currency"] = "GBP"
    (stored_purchase,) = store(game_key[0], [purchase])
    set_state([dead], DeliveryState.DEAD)
    names = {stored_purchase.pk: "purchase", dead.pk: "dead-install", web.pk: "web-install", plain.pk: "plain"}

    response = operator.get(EVENTS_URL, query)

    assert {names[pk] for pk in page_ids(response)} == expected


def test_event_list_filters_by_game(operator, game_key, other_game_key, make_install):
    mine = store(game_key[0], [make_install(), make_install()])
    store(other_game_key[0], [make_install()])

    response = operator.get(EVENTS_URL, {"game__id__exact": game_key[0].game_id})

    assert page_ids(response) == {e.pk for e in mine}


def test_event_list_filters_by_state_and_game_together(operator, game_key, other_game_key, make_install):
    dead_mine, _alive = store(game_key[0], [make_install(), make_install()])
    (dead_other,) = store(other_game_key[0], [make_install()])
    set_state([dead_mine, dead_other], DeliveryState.DEAD)

    response = operator.get(EVENTS_URL, {"delivery_state": "dead", "game__id__exact": game_key[0].game_id})

    assert page_ids(response) == {dead_mine.pk}
    assert '<span class="result-count">1</span>' in response.content.decode()


def test_filter_choices_offer_the_values_that_occur(operator, game_key, make_install, make_purchase):
    store(game_key[0], [make_install(platform="switch"), make_purchase()])

    response = operator.get(EVENTS_URL)

    titles = {
        str(spec.title): [c["display"] for c in spec.choices(response.context["cl"])]
        for spec in response.context["cl"].filter_specs
    }
    assert titles["type"] == ["All", "install", "purchase"]
    assert titles["platform"] == ["All", "android", "switch"]
    assert titles["currency"] == ["All", "EUR"]
    assert titles["delivery"] == ["All", "Pending", "Delivered", "Failed (will retry)", "Dead (gave up)"]


@pytest.mark.parametrize("state", DeliveryState.values)
def test_the_delivery_filter_derives_each_state_from_the_relay_and_the_issues(operator, game_key, make_install, state):
    names = ["delivered", "resent-delivered", "failed", "dead", "resent", "not-relayed"]
    events = dict(zip(names, store(game_key[0], [make_install(player_id=name) for name in names]), strict=True))
    set_state([events["delivered"]], DeliveryState.DELIVERED)
    set_state([events["resent-delivered"]], DeliveryState.DELIVERED, resent_at=timezone.now())
    set_state([events["failed"]], DeliveryState.FAILED)
    set_state([events["dead"]], DeliveryState.DEAD)
    set_state([events["resent"]], DeliveryState.PENDING, resent_at=timezone.now())  # the relay passed the rest
    expected = {
        DeliveryState.DELIVERED: {"delivered", "resent-delivered"},
        DeliveryState.FAILED: {"failed"},
        DeliveryState.DEAD: {"dead"},
        DeliveryState.PENDING: {"resent", "not-relayed"},
    }[state]

    response = operator.get(EVENTS_URL, {"delivery_state": state})

    assert {event.player_id for event in response.context["cl"].result_list} == expected
    assert {state_of(events[name]) for name in expected} == {state}
    html = response.content.decode()
    assert html.count(f'<span class="state-badge state-{state}"') == len(expected)


def test_an_unknown_delivery_state_is_refused_not_a_server_error(operator, game_key, make_install):
    store(game_key[0], [make_install()])

    response = operator.get(EVENTS_URL, {"delivery_state": "lost"})

    assert (response.status_code, response["Location"]) == (302, f"{EVENTS_URL}?e=1")


def test_event_list_filters_by_custom_types_too(operator, game_key, make_install):
    custom.register_schema(game=game_key[0].game, event_type="level_up", schema=LEVEL_UP_SCHEMA)
    accept_unknown_types(game_key[0].game)
    level_ups = store(game_key[0], [make_event("level_up", {"level": 2}), make_event("level_up", {"level": 3})])
    (boss,) = store(game_key[0], [make_event("boss_defeated", {"boss": "hydra"})])  # no schema: accepted
    store(game_key[0], [make_install()])

    listing = operator.get(EVENTS_URL)
    filtered = operator.get(EVENTS_URL, {"event_type": "level_up"})
    unlisted = operator.get(EVENTS_URL, {"event_type": "boss_defeated"})

    type_filter = next(spec for spec in listing.context["cl"].filter_specs if str(spec.title) == "type")
    choices = [choice["display"] for choice in type_filter.choices(listing.context["cl"])]
    assert choices == ["All", "boss_defeated", "install", "level_up"]
    assert page_ids(filtered) == {event.pk for event in level_ups}
    assert page_ids(unlisted) == {boss.pk}
    assert '<span class="result-count">2</span>' in filtered.content.decode()


def test_the_list_shows_the_last_24_hours_by_default_and_other_ranges_on_request(operator, game_key, make_install):
    # Stored oldest first, as events arrive: ids follow arrival (SQLite bounds a range by id on that).
    old, last_week, yesterday, recent = store(game_key[0], [make_install() for _ in range(4)])
    now = timezone.now()
    Event.objects.filter(pk=yesterday.pk).update(received_at=now - timedelta(hours=30))
    Event.objects.filter(pk=last_week.pk).update(received_at=now - timedelta(days=6))
    Event.objects.filter(pk=old.pk).update(received_at=now - timedelta(days=90))

    default = operator.get(EVENTS_URL)

    assert page_ids(default) == {recent.pk}
    range_filter = next(spec for spec in default.context["cl"].filter_specs if str(spec.title) == "received")
    choices = list(range_filter.choices(default.context["cl"]))
    assert [c["display"] for c in choices] == ["Last hour", "Last 24 hours", "Last 7 days", "Last 30 days", "All time"]
    assert [c["display"] for c in choices if c["selected"]] == ["Last 24 hours"]
    assert page_ids(operator.get(EVENTS_URL, {"received": "1h"})) == {recent.pk}
    assert page_ids(operator.get(EVENTS_URL, {"received": "7d"})) == {recent.pk, yesterday.pk, last_week.pk}
    assert page_ids(operator.get(EVENTS_URL, {"received": "30d"})) == {recent.pk, yesterday.pk, last_week.pk}
    assert page_ids(operator.get(EVENTS_URL, {"received": "all"})) == {recent.pk, yesterday.pk, last_week.pk, old.pk}


def test_an_unknown_time_range_is_refused_not_a_server_error(operator, game_key, make_install):
    response = operator.get(EVENTS_URL, {"received": "2y"})

    assert (response.status_code, response["Location"]) == (302, f"{EVENTS_URL}?e=1")


def test_the_list_is_newest_first_by_arrival_and_pages_by_keyset(operator, game_key, make_install, monkeypatch):
    monkeypatch.setattr(EventAdmin, "list_per_page", 3)
    events = store(game_key[0], [make_install(player_id=f"p{i}") for i in range(7)])
    ids = [event.pk for event in reversed(events)]  # newest first

    first = operator.get(EVENTS_URL, {"event_type": "install"})
    assert [event.pk for event in first.context["cl"].result_list] == ids[:3]
    html = first.content.decode()
    assert f'href="?before={ids[2]}&amp;event_type=install"' in html or f"before={ids[2]}" in html
    assert 'id="newest-page"' not in html
    assert '<span class="result-count">3+</span>' in html

    second = operator.get(EVENTS_URL, {"event_type": "install", "before": ids[2]})
    assert [event.pk for event in second.context["cl"].result_list] == ids[3:6]
    cl = second.context["cl"]
    assert all("before" not in c["query_string"] for spec in cl.filter_specs for c in spec.choices(cl))  # start over
    last = operator.get(EVENTS_URL, {"event_type": "install", "before": ids[5]})
    assert [event.pk for event in last.context["cl"].result_list] == ids[6:]
    html = last.content.decode()
    assert 'id="older-page"' not in html and 'id="newest-page"' in html
    assert '<span class="result-count">1</span>' in html


def test_a_before_that_is_not_an_id_is_refused_not_a_server_error(operator, game_key, make_install):
    store(game_key[0], [make_install()])

    response = operator.get(EVENTS_URL, {"before": "yesterday"})

    assert (response.status_code, response["Location"]) == (302, f"{EVENTS_URL}?e=1")


def test_search_finds_events_by_exact_event_id_player_id_and_transaction_id(
    operator, game_key, make_install, make_purchase
):
    install, other = store(game_key[0], [make_install(player_id="alice"), make_install(player_id="bob")])
    purchase_event = make_purchase(player_id="carol")
    purchase_event["properties"]["transaction_id"] = "GPA.4242"
    (purchase,) = store(game_key[0], [purchase_event])

    assert page_ids(operator.get(EVENTS_URL, {"q": str(install.event_id)})) == {install.pk}
    assert page_ids(operator.get(EVENTS_URL, {"q": "bob"})) == {other.pk}
    assert page_ids(operator.get(EVENTS_URL, {"q": "GPA.4242"})) == {purchase.pk}
    assert page_ids(operator.get(EVENTS_URL, {"q": "ali"})) == set()  # exact, not a substring scan


def test_search_finds_a_players_and_a_purchases_events_in_the_range_chosen_and_an_event_id_in_it(
    operator, game_key, other_game_key, make_install, make_purchase
):
    old_install, recent = store(game_key[0], [make_install(player_id="dana"), make_install(player_id="dana")])
    (elsewhere,) = store(other_game_key[0], [make_install(player_id="dana")])
    purchase_event = make_purchase(player_id="erin")
    purchase_event["properties"]["transaction_id"] = "GPA.old"
    (purchase,) = store(game_key[0], [purchase_event])
    long_ago = timezone.now() - timedelta(days=12)
    Event.objects.filter(pk__in=[old_install.pk, purchase.pk]).update(received_at=long_ago)
    PurchaseKey.objects.filter(transaction_id="GPA.old").update(received_at=long_ago)

    assert page_ids(operator.get(EVENTS_URL, {"q": "dana"})) == {recent.pk, elsewhere.pk}
    assert page_ids(operator.get(EVENTS_URL, {"q": "dana", "received": "all"})) == {
        old_install.pk,
        recent.pk,
        elsewhere.pk,
    }
    assert page_ids(operator.get(EVENTS_URL, {"q": "GPA.old"})) == set()
    assert page_ids(operator.get(EVENTS_URL, {"q": "GPA.old", "received": "30d"})) == {purchase.pk}
    assert page_ids(operator.get(EVENTS_URL, {"q": str(old_install.event_id)})) == set()
    assert page_ids(operator.get(EVENTS_URL, {"q": str(old_install.event_id), "received": "all"})) == {old_install.pk}
    help_text = operator.get(EVENTS_URL).content.decode()
    assert "among the events received in the time range chosen" in help_text


def test_search_with_text_that_is_not_a_uuid_finds_nothing_instead_of_failing(operator, game_key, make_install):
    store(game_key[0], [make_install()])

    response = operator.get(EVENTS_URL, {"q": "not-a-uuid-%' OR 1=1"})

    assert response.status_code == 200
    assert page_ids(response) == set()


def test_event_list_issues_the_same_number_of_queries_whatever_the_page_size(
    operator, game_key, make_install, make_purchase, monkeypatch
):
    store(game_key[0], [make_install(player_id=f"p{i}") for i in range(40)] + [make_purchase() for _ in range(20)])
    query = {"delivery_state": "pending", "event_type": "install"}

    counts = {}
    for per_page in (5, 50):
        monkeypatch.setattr(EventAdmin, "list_per_page", per_page)
        with CaptureQueriesContext(connection) as queries:
            response = operator.get(EVENTS_URL, query)
        assert len(response.context["cl"].result_list) == min(per_page, 40)
        counts[per_page] = len(queries)

    assert counts[5] == counts[50]


def test_event_list_shows_how_many_are_on_the_page(operator, game_key, make_install):
    store(game_key[0], [make_install() for _ in range(3)])

    html = operator.get(EVENTS_URL).content.decode()

    assert '<span class="result-count">3</span>' in html


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"received": "all"},
        {"event_type": "install", "platform": "android", "currency": "EUR"},
        {"game__id__exact": "1", "delivery_state": "failed"},
        {"delivery_state": "pending"},
        {"q": "player-3"},
        {"q": "3f1c5a56-0a6e-4b0e-9a55-0d1f3c8e5a11", "received": "7d"},
    ],
)
def test_event_list_costs_a_fixed_number_of_queries_and_never_counts_the_log(
    operator, game_key, make_install, make_purchase, query
):
    """The same queries for 3 events as for 150: no COUNT, no query per row, filter values from EventHour."""
    counts = []
    for number in (3, 150):
        events = store(game_key[0], [make_install(player_id=f"player-{i % 7}") for i in range(number)])
        set_state(events[: number // 3], DeliveryState.FAILED)
        with CaptureQueriesContext(connection) as queries:
            response = operator.get(EVENTS_URL, query)
        assert response.status_code == 200
        log = connection.ops.quote_name(Event._meta.db_table)
        assert not [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper() and log in q["sql"]]
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 16


# -- the detail page ------------------------------------------------------------------------------------------------


def test_event_page_shows_payload_firehose_line_timestamps_and_the_delivery_issue(
    operator, game_key, make_purchase, make_install, settings
):
    settings.EVENTS_RECORD_TARGET_BYTES = 1  # a record per line: one event fails alone
    (event,) = store(game_key[0], [make_purchase(player_id="dora", app_version="2.1.0")])
    store(game_key[0], [make_install(player_id="taken")])
    assert engine.deliver_due(destination=FailingDestination({"dora"})).failed == 1

    response = operator.get(reverse("admin:events_app_event_change", args=[event.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "&quot;player_id&quot;: &quot;dora&quot;" in html  # formatted JSON
    line = response.context["adminform"].form.instance
    assert line.pk == event.pk
    expected_line = f'"event_id":"{event.event_id}"'.replace('"', "&quot;")
    assert expected_line in html
    assert "Not delivered yet. It will be sent as this line" in html
    for label in ("Occurred (client clock)", "Sent (client clock)", "Received:", "Derived:"):
        assert label in html
    assert event.received_at.astimezone(UTC).isoformat().replace("+00:00", "Z") in html
    assert '<span class="state-badge state-failed"' in html
    assert "Delivery issue:" in html
    assert (
        f"Failed (will retry), 1 attempt; next attempt {issue_of(event).next_attempt_at:%Y-%m-%d %H:%M:%S} UTC" in html
    )
    assert f"last error: {SLOW_DOWN}" in html
    assert "no call has delivered it" in html
    assert "2.1.0" in html


def test_event_page_names_the_relay_call_that_delivered_it_and_shows_the_line_as_sent(operator, game_key, make_install):
    destination = FailingDestination()
    (event,) = store(game_key[0], [make_install()])
    assert engine.deliver_due(destination=destination).delivered == 1
    call = DeliveryCall.objects.get()

    html = operator.get(reverse("admin:events_app_event_change", args=[event.pk])).content.decode()

    assert '<span class="state-badge state-delivered"' in html
    when = f"{call.called_at.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}"[:-3]
    assert f"the relay call to firehose at {when} UTC (1 event, 1 record, {call.bytes:,} bytes)" in html
    assert "none: the relay&#x27;s one pass took it" in html
    assert "Exactly as last sent, one NDJSON line" in html
    assert "Record sent to Firehose" in html and "Record to send" not in html
    (sent,) = destination.sent
    assert f"&quot;emitted_at&quot;:&quot;{sent['emitted_at']}&quot;" in html


@pytest.mark.parametrize("state", ["pending", "delivered", "failed"])
def test_the_event_page_reads_its_delivery_in_a_fixed_number_of_queries(
    operator, game_key, make_install, settings, django_assert_max_num_queries, state
):
    settings.EVENTS_RECORD_TARGET_BYTES = 1  # a record per line: one event fails alone
    event, _ = store(game_key[0], [make_install(player_id="mine"), make_install(player_id="other")])
    if state != "pending":
        engine.deliver_due(destination=FailingDestination({"mine"} if state == "failed" else ()))

    # Session, user and permissions; the event and its game; its issue; the cursors and whether
    # they passed it; its place in the relay order and the call whose span holds it.
    with django_assert_max_num_queries(12):
        response = operator.get(reverse("admin:events_app_event_change", args=[event.pk]))

    assert f'<span class="state-badge state-{state}"' in response.content.decode()


def test_a_pending_event_page_says_no_call_has_carried_it_yet(operator, game_key, make_install):
    (event,) = store(game_key[0], [make_install()])

    html = operator.get(reverse("admin:events_app_event_change", args=[event.pk])).content.decode()

    assert '<span class="state-badge state-pending"' in html
    assert "no call yet" in html
    assert "Not delivered yet. It will be sent as this line" in html
    assert "Record to send to Firehose (not delivered)" in html
    assert "Record sent to Firehose" not in html and "Exactly as last sent" not in html


def fieldset_titles(response) -> list[str]:
    return [fieldset.name for fieldset in response.context["adminform"]]


def test_purchase_page_shows_price_times_quantity_and_the_base_currency_amount(operator, game_key, make_purchase):
    (event,) = store(game_key[0], [make_purchase()])
    Event.objects.filter(pk=event.pk).update(
        revenue_base="5.39", base_currency="USD", fx_rate="0.925925925926", fx_date="2026-11-24"
    )

    response = operator.get(reverse("admin:events_app_event_change", args=[event.pk]))

    html = response.content.decode()
    assert "Revenue" in fieldset_titles(response)
    assert "4.99 x 1 = 4.99 EUR" in html
    assert "5.39 USD (rate 0.925925925926 on 2026-11-24)" in html
    assert event.transaction_id in html


def test_ad_impression_page_shows_its_revenue_and_conversion_like_a_purchase(operator, game_key):
    (event,) = store(game_key[0], [ad_impression(revenue="0.25", currency="EUR")])

    response = operator.get(reverse("admin:events_app_event_change", args=[event.pk]))

    html = response.content.decode()
    assert "Revenue" in fieldset_titles(response)
    assert '<div class="readonly">0.25 EUR</div>' in html
    assert "no exchange rate known yet" in html
    assert "Transaction id" not in html  # ad impressions have none


def test_ad_impression_without_revenue_has_no_revenue_section(operator, game_key):
    (event,) = store(game_key[0], [ad_impression()])

    response = operator.get(reverse("admin:events_app_event_change", args=[event.pk]))

    assert response.status_code == 200
    assert "Revenue" not in fieldset_titles(response)


def test_custom_event_page_names_the_schema_version_that_checked_it(operator, game_key):
    game = game_key[0].game
    custom.register_schema(game=game, event_type="level_up", schema={"type": "object"})
    second = custom.register_schema(game=game, event_type="level_up", schema=LEVEL_UP_SCHEMA)
    (event,) = store(game_key[0], [make_event("level_up", {"level": 4})])

    response = operator.get(reverse("admin:events_app_event_change", args=[event.pk]))

    html = response.content.decode()
    assert "Custom type" in fieldset_titles(response)
    schema_url = reverse("admin:events_app_eventschema_change", args=[second.pk])
    assert f'<a href="{schema_url}">level_up version 2 (event_schema_version 2)</a>' in html
    assert "Revenue" not in fieldset_titles(response)


def test_custom_event_accepted_without_a_schema_says_so(operator, game_key):
    accept_unknown_types(game_key[0].game)
    (event,) = store(game_key[0], [make_event("boss_defeated", {"boss": "hydra"})])

    html = operator.get(reverse("admin:events_app_event_change", args=[event.pk])).content.decode()

    assert "no schema: accepted because the game&#x27;s policy" in html
    assert "event_schema_version null" in html


def test_built_in_event_page_has_no_custom_type_section(operator, game_key, make_install):
    (event,) = store(game_key[0], [make_install()])

    response = operator.get(reverse("admin:events_app_event_change", args=[event.pk]))

    assert "Custom type" not in fieldset_titles(response)
    assert "Revenue" not in fieldset_titles(response)


def test_event_page_is_read_only(resender, game_key, make_install):
    (event,) = store(game_key[0], [make_install()])
    url = reverse("admin:events_app_event_change", args=[event.pk])

    page = resender.get(url).content.decode()
    post = resender.post(url, {"player_id": "someone-else"})

    assert 'name="_save"' not in page
    assert post.status_code == 403
    assert Event.objects.get(pk=event.pk).player_id == "player-1"


# -- permissions ----------------------------------------------------------------------------------------------------


def test_read_only_operator_browses_but_cannot_resend(operator, game_key, make_install):
    (event,) = store(game_key[0], [make_install()])
    set_state([event], DeliveryState.DEAD, attempts=12)

    listing = operator.get(EVENTS_URL)
    detail = operator.get(reverse("admin:events_app_event_change", args=[event.pk])).content.decode()
    action = operator.post(EVENTS_URL, {"action": "resend_selected", "_selected_action": [event.pk]})
    button = operator.post(reverse("admin:events_app_event_resend", args=[event.pk]))
    matching = operator.post(reverse("admin:events_app_event_resend_matching"))

    assert listing.status_code == 200
    assert "resend_selected" not in listing.content.decode()
    assert "resend-matching-link" not in listing.content.decode()
    assert "resend-button" not in detail
    assert button.status_code == 403 and matching.status_code == 403
    assert action.status_code in (200, 302)
    assert state_of(event) == DeliveryState.DEAD


def test_a_group_with_the_resend_permission_can_resend(client, game_key, make_install):
    resenders = Group.objects.create(name="resenders")
    resenders.permissions.set(Permission.objects.filter(codename__in=["view_event", "resend_event"]))
    user = User.objects.create_user("grouped", password="x-secret-1", is_staff=True)
    user.groups.add(resenders)
    client.force_login(user)
    (event,) = store(game_key[0], [make_install()])
    set_state([event], DeliveryState.DEAD)

    client.post(reverse("admin:events_app_event_resend", args=[event.pk]))

    assert state_of(event) == DeliveryState.PENDING


def test_resend_needs_the_view_permission_too(client, game_key, make_install):
    """Resending without seeing the events would let a user act on events blind, one or every one at a time."""
    client.force_login(make_user("resend-only", ["resend_event"]))
    (event,) = store(game_key[0], [make_install()])
    set_state([event], DeliveryState.DEAD, attempts=12)

    asked = client.get(reverse("admin:events_app_event_resend_matching"))
    matching = client.post(reverse("admin:events_app_event_resend_matching"))
    button = client.post(reverse("admin:events_app_event_resend", args=[event.pk]))
    action = client.post(EVENTS_URL, {"action": "resend_selected", "_selected_action": [event.pk]})

    assert [asked.status_code, matching.status_code, button.status_code, action.status_code] == [403] * 4
    assert state_of(event) == DeliveryState.DEAD
    assert not DeliveryIssue.objects.filter(resent_at__isnull=False).exists()


# -- resending ------------------------------------------------------------------------------------------------------


def test_resend_selected_resets_the_issues_retry_state_records_the_resend_and_admin_log_and_reports_counts(
    resender, game_key, make_install
):
    dead, failed, pending = store(game_key[0], [make_install(), make_install(), make_install()])
    set_state([dead], DeliveryState.DEAD, attempts=12, last_error="gave up", next_attempt_at=None)
    set_state(
        [failed],
        DeliveryState.FAILED,
        attempts=3,
        last_error="throttled",
        next_attempt_at=timezone.now() + timedelta(hours=1),
    )  # the relay has not passed `pending` yet
    before = timezone.now()

    response = resender.post(
        EVENTS_URL, {"action": "resend_selected", "_selected_action": [dead.pk, failed.pk, pending.pk]}, follow=True
    )

    assert "Resent 2 events (queued for the delivery worker); skipped 1 already pending or being sent." in [
        str(m) for m in response.context["messages"]
    ]
    for event in (dead, failed):
        issue = issue_of(event)
        assert state_of(event) == DeliveryState.PENDING
        assert (issue.state, issue.attempts, issue.last_error) == (IssueState.PENDING, 0, "")
        assert before <= issue.next_attempt_at <= timezone.now()
        assert before <= issue.resent_at <= timezone.now()
        assert issue.claim_token is None
        assert issue.payload == event.payload
    assert issue_of(pending) is None  # the relay sends it anyway
    # One admin-log entry for the whole resend, not one per event.
    (logged,) = LogEntry.objects.filter(user=resender.user, action_flag=CHANGE)
    assert logged.get_change_message() == "Resent 2 events to Firehose: the selected events"


def test_resend_leaves_events_a_sender_holds_alone(game_key, make_install, admin_user):
    (claimed, free) = store(game_key[0], [make_install(), make_install()])
    set_state([claimed, free], DeliveryState.FAILED, attempts=2)
    DeliveryIssue.objects.filter(event_id=claimed.pk).update(
        claim_token=uuid.uuid4(), claimed_until=timezone.now() + timedelta(seconds=60)
    )

    counts = resend_events(queryset=Event.objects.all(), user=admin_user)

    assert (counts.resent, counts.skipped) == (1, 1)
    assert state_of(claimed) == DeliveryState.FAILED
    assert state_of(free) == DeliveryState.PENDING


def test_resend_takes_over_an_expired_lease(game_key, make_install, admin_user):
    (event,) = store(game_key[0], [make_install()])
    set_state([event], DeliveryState.FAILED, claim_token=uuid.uuid4(), claimed_until=timezone.now() - timedelta(1))

    counts = resend_events(queryset=Event.objects.all(), user=admin_user)

    assert counts.resent == 1
    assert issue_of(event).claim_token is None


def test_resend_works_through_large_selections_in_batches(game_key, make_install, admin_user):
    events = store(game_key[0], [make_install(player_id=f"p{i}") for i in range(25)])
    set_state(events, DeliveryState.DEAD, attempts=12)

    with CaptureQueriesContext(connection) as queries:
        counts = resend_events(
            queryset=Event.objects.filter(issue__state=IssueState.DEAD), user=admin_user, batch_size=10
        )

    assert (counts.resent, counts.skipped) == (25, 0)
    assert DeliveryIssue.objects.filter(state=IssueState.PENDING, attempts=0, resent_at__isnull=False).count() == 25
    assert LogEntry.objects.filter(action_flag=CHANGE).count() == 25
    updates = [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 3  # one per batch of 10


def test_resend_all_matching_asks_first_and_changes_nothing_on_get(resender, game_key, other_game_key, make_install):
    mine = store(game_key[0], [make_install(), make_install()])
    set_state(mine, DeliveryState.DEAD, attempts=12)
    query = {"delivery_state": "dead", "game__id__exact": game_key[0].game_id}

    response = resender.get(reverse("admin:events_app_event_resend_matching"), query)

    html = response.content.decode()
    assert response.status_code == 200
    assert '<strong id="resend-count">2</strong>' in html
    assert "<strong>space-raiders</strong>" in html
    assert "<strong>Dead (gave up)</strong>" in html
    assert "<li>received: <strong>Last 24 hours</strong></li>" in html  # the default range is named too
    assert set(DeliveryIssue.objects.values_list("state", flat=True)) == {IssueState.DEAD}
    assert dead_ids() == {event.pk for event in mine}


def test_resend_all_matching_counts_up_to_a_cap(resender, game_key, make_install, monkeypatch):
    monkeypatch.setattr(paginators, "COUNT_CAP", 2)
    set_state(store(game_key[0], [make_install() for _ in range(3)]), DeliveryState.DEAD)

    html = resender.get(reverse("admin:events_app_event_resend_matching"), {"delivery_state": "dead"}).content.decode()

    assert '<strong id="resend-count">2+</strong>' in html


def test_resend_all_matching_resends_only_what_the_filter_matches(resender, game_key, other_game_key, make_install):
    dead_mine = store(game_key[0], [make_install(), make_install(), make_install()])
    delivered_mine = store(game_key[0], [make_install()])
    dead_other = store(other_game_key[0], [make_install()])
    set_state(dead_mine + dead_other, DeliveryState.DEAD, attempts=12)
    set_state(delivered_mine, DeliveryState.DELIVERED)
    query = f"?delivery_state=dead&game__id__exact={game_key[0].game_id}"

    response = resender.post(reverse("admin:events_app_event_resend_matching") + query, follow=True)

    assert response.redirect_chain[-1][0] == EVENTS_URL + query
    assert "Resent 3 events (queued for the delivery worker)." in [str(m) for m in response.context["messages"]]
    assert {state_of(event) for event in dead_mine} == {DeliveryState.PENDING}
    assert state_of(dead_other[0]) == DeliveryState.DEAD
    assert state_of(delivered_mine[0]) == DeliveryState.DELIVERED
    assert issue_of(delivered_mine[0]) is None


def test_resend_all_matching_follows_the_search_too(resender, game_key, make_install):
    alice, bob = store(game_key[0], [make_install(player_id="alice"), make_install(player_id="bob")])
    set_state([alice, bob], DeliveryState.DEAD)

    resender.post(reverse("admin:events_app_event_resend_matching") + "?q=alice")

    assert state_of(alice) == DeliveryState.PENDING
    assert state_of(bob) == DeliveryState.DEAD


def test_repeating_a_resend_says_what_was_delivered_meanwhile_and_sends_it_only_once(resender, game_key, make_install):
    resent = store(game_key[0], [make_install() for _ in range(3)])
    set_state(resent, DeliveryState.DEAD, attempts=12, next_attempt_at=None)
    still_queued = store(game_key[0], [make_install()])  # not relayed yet
    url = reverse("admin:events_app_event_resend_matching") + f"?game__id__exact={game_key[0].game_id}"
    first = resender.post(url, follow=True)
    assert "Resent 3 events (queued for the delivery worker); skipped 1 already pending or being sent." in [
        str(m) for m in first.context["messages"]
    ]
    destination = FailingDestination()
    # The retry worker's batch only: the relay (which would deliver the fourth) does not run.
    assert engine.deliver_due(shards=[], destination=destination).delivered == 3

    confirm = resender.get(url).content.decode()
    second = resender.post(url, follow=True)

    assert '<span id="skips-delivered-since">resent before and delivered since</span>' in confirm

    assert (
        "Resent 0 events (queued for the delivery worker); skipped 1 already pending or being sent and 3 delivered "
        "since their last resend." in [str(m) for m in second.context["messages"]]
    )
    assert {state_of(event) for event in resent} == {DeliveryState.DELIVERED}
    assert state_of(still_queued[0]) == DeliveryState.PENDING
    assert sorted(line["event_id"] for line in destination.sent) == sorted(str(e.event_id) for e in resent)
    assert LogEntry.objects.filter(action_flag=CHANGE).count() == 1  # one per resend; the second queued nothing


def test_an_events_own_resend_button_sends_it_again_even_if_delivered_since_a_resend(resender, game_key, make_install):
    (event,) = store(game_key[0], [make_install()])
    now = timezone.now()
    set_state([event], DeliveryState.DELIVERED, resent_at=now - timedelta(minutes=5), delivered_at=now)

    bulk = resend_events(queryset=Event.objects.all(), user=resender.user)
    post = resender.post(reverse("admin:events_app_event_resend", args=[event.pk]), follow=True)

    assert (bulk.resent, bulk.delivered_since_resend) == (0, 1)
    assert "Resent 1 event (queued for the delivery worker)." in [str(m) for m in post.context["messages"]]
    assert state_of(event) == DeliveryState.PENDING


def test_a_delivered_event_never_resent_is_resent_by_a_bulk_resend(game_key, make_install, admin_user):
    (event,) = store(game_key[0], [make_install()])
    set_state([event], DeliveryState.DELIVERED)

    counts = resend_events(queryset=Event.objects.all(), user=admin_user)

    assert (counts.resent, counts.skipped) == (1, 0)
    assert (state_of(event), issue_of(event).attempts) == (DeliveryState.PENDING, 0)


def test_resend_button_resends_one_event_on_post_only(resender, game_key, make_install):
    (event,) = store(game_key[0], [make_install()])
    set_state([event], DeliveryState.DEAD, attempts=12)
    url = reverse("admin:events_app_event_resend", args=[event.pk])

    page = resender.get(reverse("admin:events_app_event_change", args=[event.pk])).content.decode()
    get = resender.get(url)
    post = resender.post(url, follow=True)

    assert 'id="resend-button"' in page
    assert get.status_code == 405
    assert post.redirect_chain[-1][0] == reverse("admin:events_app_event_change", args=[event.pk])
    assert "Resent 1 event (queued for the delivery worker)." in [str(m) for m in post.context["messages"]]
    assert state_of(event) == DeliveryState.PENDING


def test_a_resent_dead_event_is_delivered_by_the_worker_and_its_page_names_the_call(
    resender, game_key, moto_firehose, make_install
):
    (event,) = store(game_key[0], [make_install()])
    set_state([event], DeliveryState.DEAD, attempts=12, next_attempt_at=None, last_error="gave up")
    assert engine.deliver_due().claimed == 0  # dead: nothing sends it

    resender.post(reverse("admin:events_app_event_resend", args=[event.pk]))
    counts = engine.deliver_due()

    assert counts.delivered == 1
    issue = issue_of(event)
    assert (state_of(event), issue.state, issue.attempts) == (DeliveryState.DELIVERED, IssueState.DELIVERED, 1)
    assert issue.resent_at <= issue.delivered_at
    call = issue.delivered_by
    assert (call.sender, call.destination, call.events, call.outcome) == ("retry", "firehose", 1, CallOutcome.DELIVERED)
    page = resender.get(reverse("admin:events_app_event_change", args=[event.pk])).content.decode()
    assert "the retry call to firehose at " in page
    assert "Delivered, 1 attempt; resent " in page


# -- hostile query strings ------------------------------------------------------------------------------------------


OUT_OF_RANGE_DATES = [
    "received_at__year=99999",
    "received_at__gte=99999-01-01",
    "received_at__year__gte=99999",
    "occurred_at__year=10000",
]


# PostgreSQL text cannot hold NUL: such a query would fail when run.
NUL_CHARACTERS = ["player_id=a%00b", "q=a%00b", "event_type=%00"]


@pytest.mark.parametrize("query", OUT_OF_RANGE_DATES + NUL_CHARACTERS)
def test_queries_the_database_cannot_run_on_the_event_list_are_refused_not_a_server_error(
    operator, game_key, make_install, query
):
    store(game_key[0], [make_install()])

    response = operator.get(f"{EVENTS_URL}?{query}")

    assert response.status_code == 302
    assert response["Location"] == f"{EVENTS_URL}?e=1"


# The old date drill-down's parameters: plain lookups now, inside the time range; none is a server error.
FORMER_DRILL_DOWNS = [
    "received_at__year=9999",
    "received_at__year=9999&received_at__month=12&received_at__day=31",
    "received_at__year=2026&received_at__month=13",
    "received_at__year=2026&received_at__month=2&received_at__day=30",
    "received_at__day=12",
]


@pytest.mark.parametrize("query", FORMER_DRILL_DOWNS)
def test_former_date_drill_down_parameters_list_or_are_refused_never_a_server_error(
    operator, game_key, make_install, query
):
    store(game_key[0], [make_install()])

    response = operator.get(f"{EVENTS_URL}?{query}")

    assert response.status_code in (200, 302)
    if response.status_code == 200:
        assert page_ids(response) == set()


def test_a_date_drill_down_to_the_last_representable_day_still_lists(operator, game_key, make_install):
    response = operator.get(EVENTS_URL, {"received_at__year": 9998, "received_at__month": 12, "received_at__day": 31})

    assert response.status_code == 200
    assert page_ids(response) == set()


def test_resend_all_matching_refuses_payload_lookups_too(resender, game_key, make_install):
    (event,) = store(game_key[0], [make_install()])
    set_state([event], DeliveryState.DEAD)

    response = resender.post(reverse("admin:events_app_event_resend_matching") + "?payload__icontains=store")

    assert response.status_code == 400
    assert state_of(event) == DeliveryState.DEAD


def test_lookups_on_indexed_columns_still_filter(operator, game_key, make_install):
    alice, _bob = store(game_key[0], [make_install(player_id="alice"), make_install(player_id="bob")])

    response = operator.get(EVENTS_URL, {"player_id": "alice", "revenue__isnull": "True"})

    assert response.status_code == 200
    assert page_ids(response) == {alice.pk}


def test_a_bulk_resend_of_many_events_writes_one_admin_log_entry_naming_the_filter(resender, game_key, make_install):
    events = store(game_key[0], [make_install(player_id=f"p{i}") for i in range(30)])
    set_state(events, DeliveryState.DEAD, attempts=12)

    resender.post(reverse("admin:events_app_event_resend_matching") + "?delivery_state=dead&received=all")

    (entry,) = LogEntry.objects.filter(action_flag=CHANGE)
    assert entry.get_change_message() == (
        "Resent 30 events to Firehose: all matching (received: All time; delivery: Dead (gave up))"
    )
    assert entry.user == resender.user


def test_the_failed_list_gives_the_purchase_column_up_for_the_last_error(operator, game_key, make_purchase):
    (event,) = store(game_key[0], [make_purchase()])
    set_state([event], DeliveryState.FAILED, attempts=2)

    failed = operator.get(EVENTS_URL + "?delivery_state=failed").content.decode()
    every = operator.get(EVENTS_URL).content.decode()

    assert 'class="field-last_error_excerpt"' in failed and 'class="field-purchase"' not in failed
    assert 'class="field-purchase"' in every
