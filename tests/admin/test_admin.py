"""The operator console: event list, filters, search, detail, permissions, resends, games, keys, schemas, rejections."""

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from events_app.admin import EventAdmin, paginators, queries
from events_app.api.keys import issue_api_key
from events_app.delivery import engine
from events_app.delivery.resend import resend_events
from events_app.event_types import custom
from events_app.ingest.service import ingest_events
from events_app.models import (
    ApiKey,
    AttemptOutcome,
    DeliveryAttempt,
    DeliveryState,
    Event,
    EventSchema,
    Game,
    RejectedEvent,
    UnknownEventPolicy,
)
from tests.support.events import now_rfc3339
from tests.support.users import make_user

EVENTS_URL = reverse("admin:events_app_event_changelist")
READ_ONLY_PERMISSIONS = ["view_event", "view_game", "view_apikey", "view_rejectedevent", "view_eventschema"]
SCHEMAS_URL = reverse("admin:events_app_eventschema_changelist")
REGISTER_URL = reverse("admin:events_app_eventschema_add")
LEVEL_UP_SCHEMA = {
    "type": "object",
    "properties": {"level": {"type": "integer", "minimum": 1}, "world": {"type": "string"}},
    "required": ["level"],
}


def make_event(event_type: str, properties: dict, **fields) -> dict:
    """Return a valid event of any type (built-in or custom) with these properties."""
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "player_id": "player-1",
        "occurred_at": now_rfc3339(),
        "properties": properties,
        **fields,
    }


def accept_unknown_types(game: Game) -> None:
    game.unknown_events = UnknownEventPolicy.ACCEPT
    game.save(update_fields=["unknown_events"])


def ad_impression(**properties) -> dict:
    return make_event("ad_impression", {"ad_network": "admob", "ad_format": "rewarded", **properties})


def store(api_key: ApiKey, raw_events: list[dict]) -> list[Event]:
    """Ingest `raw_events` for the key's game and return their rows, in the order given."""
    outcome = ingest_events(api_key=api_key, raw_events=raw_events, received_at=timezone.now())
    assert outcome.rejected == 0, outcome.results
    ids = [uuid.UUID(result["event_id"]) for result in outcome.results]
    rows = {event.event_id: event for event in Event.objects.filter(event_id__in=ids)}
    return [rows[event_id] for event_id in ids]


def set_state(events: list[Event], state: str, **fields) -> None:
    Event.objects.filter(pk__in=[e.pk for e in events]).update(delivery_state=state, **fields)


@pytest.fixture
def operator(client, db):
    """A logged-in read-only operator: may browse everything, resend nothing."""
    client.force_login(make_user("reader", READ_ONLY_PERMISSIONS))
    return client


@pytest.fixture
def resender(client, db):
    """A logged-in operator who may also resend events."""
    user = make_user("resender", [*READ_ONLY_PERMISSIONS, "resend_event"])
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def other_game_key(db):
    return issue_api_key(game_slug="moon-miners", name="tests")


def page_ids(response) -> set[int]:
    return {event.pk for event in response.context["cl"].result_list}


# -- the list -----------------------------------------------------------------------------------------------------


def test_event_list_shows_time_type_game_player_a_state_badge_and_attempts(operator, game_key, make_install):
    (event,) = store(game_key[0], [make_install(player_id="player-77")])
    set_state([event], DeliveryState.FAILED, attempts=3)

    response = operator.get(EVENTS_URL)

    assert response.status_code == 200
    html = response.content.decode()
    assert "player-77" in html
    assert "space-raiders" in html
    assert '<span class="state-badge state-failed"' in html
    assert '<td class="field-attempts">3</td>' in html
    assert "events_app/admin.css" in html


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
    set_state([delivered], DeliveryState.DELIVERED, attempts=1, next_attempt_at=None)

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

    with django_assert_max_num_queries(26):  # as many as before the columns, whatever the page size
        response = operator.get(EVENTS_URL)
    assert response.content.decode().count('class="product"') == 30


def test_view_site_opens_a_page_that_exists(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()

    view_site = re.search(r'<a href="([^"]+)">View site</a>', html).group(1)
    assert view_site == "/api/docs/"
    assert admin_client.get(view_site).status_code == 200


def test_rejected_events_give_their_reason_room_to_read_as_a_sentence(operator, api, make_install):
    api.post("/v1/events/batch", {"events": [make_install(player_id="")]}, format="json")

    html = operator.get(reverse("admin:events_app_rejectedevent_changelist")).content.decode()
    css = (settings.BASE_DIR / "events_app/static/events_app/admin.css").read_text()

    assert "events_app/admin.css" in html and '<td class="field-reason">' in html
    assert ".model-rejectedevent #result_list td.field-reason { min-width: 24em; }" in css
    assert ".model-rejectedevent #result_list td.field-body_excerpt code { word-break: break-all; }" in css
    assert "#result_list thead th { white-space: nowrap; }" in css  # no header clipped or broken


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"event_type": "purchase"}, {"purchase"}),
        ({"delivery_state__exact": "dead"}, {"dead-install"}),
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

    response = operator.get(EVENTS_URL, {"delivery_state__exact": "dead", "game__id__exact": game_key[0].game_id})

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
    assert "Dead (gave up)" in titles["delivery state"]


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


def test_date_hierarchy_drills_down_to_the_days_that_have_events(operator, game_key, make_install):
    first, second, third = store(game_key[0], [make_install(), make_install(), make_install()])
    Event.objects.filter(pk=first.pk).update(received_at=datetime(2026, 3, 5, 10, tzinfo=UTC))
    Event.objects.filter(pk=second.pk).update(received_at=datetime(2026, 3, 9, 23, 59, tzinfo=UTC))
    Event.objects.filter(pk=third.pk).update(received_at=datetime(2026, 5, 1, tzinfo=UTC))

    year = operator.get(EVENTS_URL).content.decode()
    march = operator.get(EVENTS_URL, {"received_at__year": 2026, "received_at__month": 3})
    day = operator.get(EVENTS_URL, {"received_at__year": 2026, "received_at__month": 3, "received_at__day": 9})

    assert "received_at__month=3" in year and "received_at__month=5" in year
    assert "received_at__month=4" not in year
    days = march.content.decode()
    assert "received_at__day=5" in days and "received_at__day=9" in days and "received_at__day=6" not in days
    assert page_ids(march) == {first.pk, second.pk}
    assert page_ids(day) == {second.pk}


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


def test_search_with_text_that_is_not_a_uuid_finds_nothing_instead_of_failing(operator, game_key, make_install):
    store(game_key[0], [make_install()])

    response = operator.get(EVENTS_URL, {"q": "not-a-uuid-%' OR 1=1"})

    assert response.status_code == 200
    assert page_ids(response) == set()


def test_event_list_issues_the_same_number_of_queries_whatever_the_page_size(
    operator, game_key, make_install, make_purchase, monkeypatch
):
    store(game_key[0], [make_install(player_id=f"p{i}") for i in range(40)] + [make_purchase() for _ in range(20)])
    query = {"delivery_state__exact": "pending", "event_type": "install"}

    counts = {}
    for per_page in (5, 50):
        monkeypatch.setattr(EventAdmin, "list_per_page", per_page)
        with CaptureQueriesContext(connection) as queries:
            response = operator.get(EVENTS_URL, query)
        assert len(response.context["cl"].result_list) == min(per_page, 40)
        counts[per_page] = len(queries)

    assert counts[5] == counts[50]


def test_event_list_counts_only_up_to_the_cap_and_says_so(operator, game_key, make_install, monkeypatch):
    monkeypatch.setattr(paginators.EstimatedCountPaginator, "cap", 5)
    store(game_key[0], [make_install() for _ in range(8)])

    html = operator.get(EVENTS_URL).content.decode()

    assert '<span class="result-count">5+</span>' in html


def test_event_list_shows_the_exact_count_below_the_cap(operator, game_key, make_install):
    store(game_key[0], [make_install() for _ in range(3)])

    html = operator.get(EVENTS_URL).content.decode()

    assert '<span class="result-count">3</span>' in html


@pytest.mark.skipif(connection.vendor != "postgresql", reason="table estimates are PostgreSQL's")
def test_unfiltered_event_list_on_postgresql_uses_the_table_estimate(operator, game_key, make_install, monkeypatch):
    monkeypatch.setattr(paginators.EstimatedCountPaginator, "cap", 5)
    store(game_key[0], [make_install() for _ in range(12)])
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Event._meta.db_table}")

    unfiltered = operator.get(EVENTS_URL).content.decode()
    filtered = operator.get(EVENTS_URL, {"event_type": "install"}).content.decode()

    assert '<span class="result-count">about 12</span>' in unfiltered
    assert '<span class="result-count">5+</span>' in filtered


# -- the detail page ------------------------------------------------------------------------------------------------


def test_event_page_shows_payload_firehose_line_timestamps_and_attempt_history(operator, game_key, make_purchase):
    (event,) = store(game_key[0], [make_purchase(player_id="dora", app_version="2.1.0")])
    sent_at = timezone.now()
    Event.objects.filter(pk=event.pk).update(
        delivery_state=DeliveryState.FAILED,
        attempts=1,
        emitted_at=sent_at,
        last_error="ServiceUnavailableException: slow down",
    )
    DeliveryAttempt.objects.create(
        event=event, attempted_at=sent_at, outcome=AttemptOutcome.FAILED, error="ServiceUnavailableException: slow down"
    )

    response = operator.get(reverse("admin:events_app_event_change", args=[event.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "&quot;player_id&quot;: &quot;dora&quot;" in html  # formatted JSON
    line = response.context["adminform"].form.instance
    assert line.pk == event.pk
    expected_line = f'"event_id":"{event.event_id}"'.replace('"', "&quot;")
    assert expected_line in html
    assert f"&quot;emitted_at&quot;:&quot;{sent_at.astimezone(UTC).isoformat()[:19]}" in html
    for label in ("Occurred (client clock)", "Sent (client clock)", "Received:", "Derived:"):
        assert label in html
    assert event.received_at.astimezone(UTC).isoformat().replace("+00:00", "Z") in html
    assert "ServiceUnavailableException: slow down" in html
    assert "Delivery attempts and resends" in html
    assert "2.1.0" in html


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
    assert Event.objects.get(pk=event.pk).delivery_state == DeliveryState.DEAD


def test_a_group_with_the_resend_permission_can_resend(client, game_key, make_install):
    resenders = Group.objects.create(name="resenders")
    resenders.permissions.set(Permission.objects.filter(codename__in=["view_event", "resend_event"]))
    user = User.objects.create_user("grouped", password="x-secret-1", is_staff=True)
    user.groups.add(resenders)
    client.force_login(user)
    (event,) = store(game_key[0], [make_install()])
    set_state([event], DeliveryState.DEAD)

    client.post(reverse("admin:events_app_event_resend", args=[event.pk]))

    assert Event.objects.get(pk=event.pk).delivery_state == DeliveryState.PENDING


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
    assert Event.objects.get(pk=event.pk).delivery_state == DeliveryState.DEAD
    assert not DeliveryAttempt.objects.filter(outcome=AttemptOutcome.RESEND).exists()


def test_anonymous_visitors_are_sent_to_the_login_page(client, db):
    response = client.get(reverse("admin:events_app_event_dashboard"))

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


# -- resending ------------------------------------------------------------------------------------------------------


def test_resend_selected_resets_retry_state_records_attempt_and_admin_log_and_reports_counts(
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
    )
    before = timezone.now()

    response = resender.post(
        EVENTS_URL, {"action": "resend_selected", "_selected_action": [dead.pk, failed.pk, pending.pk]}, follow=True
    )

    assert "Resent 2 events (queued for the delivery worker); skipped 1 already pending or being sent." in [
        str(m) for m in response.context["messages"]
    ]
    for event in Event.objects.filter(pk__in=[dead.pk, failed.pk]):
        assert event.delivery_state == DeliveryState.PENDING
        assert event.attempts == 0
        assert event.last_error == ""
        assert before <= event.next_attempt_at <= timezone.now()
        assert event.claim_token is None
        assert event.attempts_log.filter(outcome=AttemptOutcome.RESEND).count() == 1
    assert not DeliveryAttempt.objects.filter(event=pending, outcome=AttemptOutcome.RESEND).exists()
    logged = LogEntry.objects.filter(user=resender.user, action_flag=CHANGE)
    assert sorted(int(entry.object_id) for entry in logged) == sorted([dead.pk, failed.pk])
    assert all("Resent" in entry.get_change_message() for entry in logged)


def test_resend_leaves_events_a_sender_holds_alone(game_key, make_install, admin_user):
    (claimed, free) = store(game_key[0], [make_install(), make_install()])
    set_state([claimed, free], DeliveryState.FAILED, attempts=2)
    Event.objects.filter(pk=claimed.pk).update(
        claim_token=uuid.uuid4(), claimed_until=timezone.now() + timedelta(seconds=60)
    )

    counts = resend_events(queryset=Event.objects.all(), user=admin_user)

    assert (counts.resent, counts.skipped) == (1, 1)
    assert Event.objects.get(pk=claimed.pk).delivery_state == DeliveryState.FAILED


def test_resend_takes_over_an_expired_lease(game_key, make_install, admin_user):
    (event,) = store(game_key[0], [make_install()])
    set_state([event], DeliveryState.FAILED, claim_token=uuid.uuid4(), claimed_until=timezone.now() - timedelta(1))

    counts = resend_events(queryset=Event.objects.all(), user=admin_user)

    assert counts.resent == 1
    assert Event.objects.get(pk=event.pk).claim_token is None


def test_resend_works_through_large_selections_in_batches(game_key, make_install, admin_user):
    events = store(game_key[0], [make_install(player_id=f"p{i}") for i in range(25)])
    set_state(events, DeliveryState.DEAD, attempts=12)

    with CaptureQueriesContext(connection) as queries:
        counts = resend_events(queryset=Event.objects.filter(delivery_state="dead"), user=admin_user, batch_size=10)

    assert (counts.resent, counts.skipped) == (25, 0)
    assert Event.objects.filter(delivery_state=DeliveryState.PENDING, attempts=0).count() == 25
    assert DeliveryAttempt.objects.filter(outcome=AttemptOutcome.RESEND).count() == 25
    updates = [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 3  # one per batch of 10


def test_resend_all_matching_asks_first_and_changes_nothing_on_get(resender, game_key, other_game_key, make_install):
    mine = store(game_key[0], [make_install(), make_install()])
    set_state(mine, DeliveryState.DEAD, attempts=12)
    query = {"delivery_state__exact": "dead", "game__id__exact": game_key[0].game_id}

    response = resender.get(reverse("admin:events_app_event_resend_matching"), query)

    html = response.content.decode()
    assert response.status_code == 200
    assert '<strong id="resend-count">2</strong>' in html
    assert "<strong>space-raiders</strong>" in html
    assert "<strong>Dead (gave up)</strong>" in html
    assert set(Event.objects.values_list("delivery_state", flat=True)) == {DeliveryState.DEAD}


def test_resend_all_matching_resends_only_what_the_filter_matches(resender, game_key, other_game_key, make_install):
    dead_mine = store(game_key[0], [make_install(), make_install(), make_install()])
    delivered_mine = store(game_key[0], [make_install()])
    dead_other = store(other_game_key[0], [make_install()])
    set_state(dead_mine + dead_other, DeliveryState.DEAD, attempts=12)
    set_state(delivered_mine, DeliveryState.DELIVERED, attempts=1)
    query = f"?delivery_state__exact=dead&game__id__exact={game_key[0].game_id}"

    response = resender.post(reverse("admin:events_app_event_resend_matching") + query, follow=True)

    assert response.redirect_chain[-1][0] == EVENTS_URL + query
    assert "Resent 3 events (queued for the delivery worker)." in [str(m) for m in response.context["messages"]]
    assert set(Event.objects.filter(pk__in=[e.pk for e in dead_mine]).values_list("delivery_state", flat=True)) == {
        DeliveryState.PENDING
    }
    assert Event.objects.get(pk=dead_other[0].pk).delivery_state == DeliveryState.DEAD
    assert Event.objects.get(pk=delivered_mine[0].pk).delivery_state == DeliveryState.DELIVERED


def test_resend_all_matching_follows_the_search_too(resender, game_key, make_install):
    alice, bob = store(game_key[0], [make_install(player_id="alice"), make_install(player_id="bob")])
    set_state([alice, bob], DeliveryState.DEAD)

    resender.post(reverse("admin:events_app_event_resend_matching") + "?q=alice")

    assert Event.objects.get(pk=alice.pk).delivery_state == DeliveryState.PENDING
    assert Event.objects.get(pk=bob.pk).delivery_state == DeliveryState.DEAD


def test_repeating_a_resend_says_what_was_delivered_meanwhile_and_sends_it_only_once(
    resender, game_key, moto_firehose, make_install
):
    resent = store(game_key[0], [make_install() for _ in range(3)])
    set_state(resent, DeliveryState.DEAD, attempts=12, next_attempt_at=None)
    still_queued = store(game_key[0], [make_install()])
    url = reverse("admin:events_app_event_resend_matching") + f"?game__id__exact={game_key[0].game_id}"
    first = resender.post(url, follow=True)
    assert "Resent 3 events (queued for the delivery worker); skipped 1 already pending or being sent." in [
        str(m) for m in first.context["messages"]
    ]
    Event.objects.filter(pk=still_queued[0].pk).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    assert engine.deliver_due().delivered == 3

    confirm = resender.get(url).content.decode()
    second = resender.post(url, follow=True)

    assert '<span id="skips-delivered-since">resent before and delivered since</span>' in confirm

    assert (
        "Resent 0 events (queued for the delivery worker); skipped 1 already pending or being sent and 3 delivered "
        "since their last resend." in [str(m) for m in second.context["messages"]]
    )
    assert set(Event.objects.filter(pk__in=[e.pk for e in resent]).values_list("delivery_state", flat=True)) == {
        DeliveryState.DELIVERED
    }
    assert DeliveryAttempt.objects.filter(outcome=AttemptOutcome.RESEND).count() == 3


def test_an_events_own_resend_button_sends_it_again_even_if_delivered_since_a_resend(resender, game_key, make_install):
    (event,) = store(game_key[0], [make_install()])
    set_state([event], DeliveryState.DELIVERED, delivered_at=timezone.now())
    DeliveryAttempt.objects.create(
        event=event, attempted_at=timezone.now() - timedelta(minutes=5), outcome=AttemptOutcome.RESEND
    )

    bulk = resend_events(queryset=Event.objects.all(), user=resender.user)
    post = resender.post(reverse("admin:events_app_event_resend", args=[event.pk]), follow=True)

    assert (bulk.resent, bulk.delivered_since_resend) == (0, 1)
    assert "Resent 1 event (queued for the delivery worker)." in [str(m) for m in post.context["messages"]]
    assert Event.objects.get(pk=event.pk).delivery_state == DeliveryState.PENDING


def test_a_delivered_event_never_resent_is_resent_by_a_bulk_resend(game_key, make_install, admin_user):
    (event,) = store(game_key[0], [make_install()])
    set_state([event], DeliveryState.DELIVERED, delivered_at=timezone.now())

    counts = resend_events(queryset=Event.objects.all(), user=admin_user)

    assert (counts.resent, counts.skipped) == (1, 0)


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
    assert Event.objects.get(pk=event.pk).delivery_state == DeliveryState.PENDING


def test_a_resent_dead_event_is_delivered_by_the_worker(resender, game_key, moto_firehose, make_install):
    (event,) = store(game_key[0], [make_install()])
    set_state([event], DeliveryState.DEAD, attempts=12, next_attempt_at=None, last_error="gave up")
    assert engine.deliver_due().claimed == 0

    resender.post(reverse("admin:events_app_event_resend", args=[event.pk]))
    counts = engine.deliver_due()

    assert counts.delivered == 1
    event.refresh_from_db()
    assert (event.delivery_state, event.attempts) == (DeliveryState.DELIVERED, 1)
    assert list(event.attempts_log.order_by("id").values_list("outcome", flat=True)) == [
        AttemptOutcome.RESEND,
        AttemptOutcome.DELIVERED,
    ]


# -- games and API keys ---------------------------------------------------------------------------------------------


def test_a_game_is_created_in_the_admin(admin_client):
    inline_management = {"api_keys-TOTAL_FORMS": 0, "api_keys-INITIAL_FORMS": 0}
    response = admin_client.post(
        reverse("admin:events_app_game_add"),
        {"slug": "star-farm", "name": "Star Farm", "unknown_events": "reject", **inline_management},
    )

    assert response.status_code == 302
    assert Game.objects.filter(slug="star-farm", name="Star Farm").exists()


def test_game_page_sets_the_policy_for_custom_types_without_a_schema(admin_client, api, make_install):
    (api_key, plaintext) = issue_api_key(game_slug="star-farm")
    game = api_key.game
    url = reverse("admin:events_app_game_change", args=[game.pk])
    page = admin_client.get(url).content.decode()
    keys = {
        "api_keys-TOTAL_FORMS": 1,
        "api_keys-INITIAL_FORMS": 1,
        "api_keys-0-id": api_key.pk,
        "api_keys-0-game": game.pk,
    }  # the page's (read-only) key inline

    response = admin_client.post(url, {"name": "Star Farm", "unknown_events": "accept", **keys})

    assert 'name="unknown_events"' in page
    assert "Custom types without a schema" in page
    assert response.status_code == 302
    assert Game.objects.get(pk=game.pk).unknown_events == UnknownEventPolicy.ACCEPT
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert api.post("/v1/events", make_event("boss_defeated", {"boss": "hydra"}), format="json").status_code == 202


def test_game_list_shows_each_games_policy(admin_client, game_key):
    Game.objects.create(slug="star-farm", unknown_events=UnknownEventPolicy.ACCEPT)

    html = admin_client.get(reverse("admin:events_app_game_changelist")).content.decode()

    assert "Accept without a schema" in html
    assert "Reject (400 naming event_type)" in html


def test_game_page_lists_its_custom_types_with_their_latest_versions(admin_client, game_key, other_game_key):
    game = game_key[0].game
    for schema in ({"type": "object"}, LEVEL_UP_SCHEMA):
        custom.register_schema(game=game, event_type="level_up", schema=schema)
    custom.register_schema(game=game, event_type="chest_opened", schema={"type": "object"})
    custom.register_schema(game=other_game_key[0].game, event_type="quest_done", schema={"type": "object"})

    html = admin_client.get(reverse("admin:events_app_game_change", args=[game.pk])).content.decode()

    rows = html.split('id="custom-types"', 1)[1].split("</table>", 1)[0]
    assert rows.index("chest_opened") < rows.index("level_up")
    level_up = rows.split('<tr id="custom-type-level_up">', 1)[1].split("</tr>", 1)[0]
    assert re.search(r'<td><code>level_up</code></td>\s*<td class="num">2</td>', level_up)
    assert "quest_done" not in rows
    assert f"?game__id__exact={game.pk}&amp;event_type=level_up" in rows  # all versions
    assert f"?game={game.pk}&amp;event_type=level_up" in rows  # register a new version
    assert 'id="register-schema-link"' in html


def test_game_page_counts_the_games_events_by_type(admin_client, game_key, other_game_key, make_install, make_purchase):
    game = game_key[0].game
    custom.register_schema(game=game, event_type="level_up", schema=LEVEL_UP_SCHEMA)
    store(game_key[0], [make_install(), make_install(), make_install(), make_purchase()])
    store(game_key[0], [make_event("level_up", {"level": 2}), make_event("level_up", {"level": 3})])
    store(other_game_key[0], [make_install()])

    html = admin_client.get(reverse("admin:events_app_game_change", args=[game.pk])).content.decode()

    section = html.split('id="type-counts"', 1)[1]
    counts = re.findall(
        r'<code>([a-z_]+)</code></td><td class="quiet">([a-z-]+)</td><td class="num"><a href="([^"]+)"'
        r' id="type-count-[a-z_]+">(\d+)</a>',
        section,
    )
    assert [(name, kind, int(n)) for name, kind, _link, n in counts] == [
        ("install", "built-in", 3),
        ("level_up", "custom", 2),
        ("purchase", "built-in", 1),
    ]
    assert counts[1][2] == f"{EVENTS_URL}?game__id__exact={game.pk}&amp;event_type=level_up"
    assert "All 6 events of the game." in section


def test_game_event_counts_cover_only_the_newest_events_past_the_cap(admin_client, game_key, make_install, monkeypatch):
    monkeypatch.setattr(queries, "TYPE_COUNT_CAP", 3)
    accept_unknown_types(game_key[0].game)
    old = store(game_key[0], [make_install(), make_install()])
    Event.objects.filter(pk__in=[e.pk for e in old]).update(received_at=datetime(2026, 1, 1, tzinfo=UTC))
    newest = store(game_key[0], [make_event("chest_opened", {}) for _ in range(3)])
    Event.objects.filter(pk__in=[e.pk for e in newest]).update(received_at=datetime(2026, 3, 2, 9, 30, tzinfo=UTC))

    html = admin_client.get(reverse("admin:events_app_game_change", args=[game_key[0].game_id])).content.decode()

    assert 'id="type-count-chest_opened">3<' in html
    assert 'id="type-count-install"' not in html
    assert "Counted over the game's newest 3 events (received since 2026-03-02 09:30 UTC)" in html


def test_game_event_counts_take_one_query_whatever_the_number_of_types(
    game_key, make_install, make_purchase, django_assert_num_queries
):
    store(
        game_key[0],
        [make_install(), make_purchase(), ad_impression(), make_event("session_start", {}, session_id="s-1")],
    )

    with django_assert_num_queries(1):
        counts = queries.type_counts(game=game_key[0].game)

    assert counts.counts == {"ad_impression": 1, "install": 1, "purchase": 1, "session_start": 1}
    assert not counts.is_capped


def test_a_game_without_events_or_custom_types_says_so(admin_client, db):
    game = Game.objects.create(slug="star-farm")

    html = admin_client.get(reverse("admin:events_app_game_change", args=[game.pk])).content.decode()

    assert 'id="no-custom-types"' in html
    assert "No events from this game yet." in html


def test_issuing_a_key_shows_the_plaintext_once_and_stores_only_its_hash(admin_client, game_key, api, make_install):
    game = game_key[0].game
    form = admin_client.get(reverse("admin:events_app_apikey_add"), {"game": game.pk})

    response = admin_client.post(reverse("admin:events_app_apikey_add"), {"game": game.pk, "name": "ios-prod"})

    assert form.status_code == 200
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    (api_key, plaintext) = response.context["issued"][0]
    assert plaintext in response.content.decode()
    assert ApiKey.objects.get(pk=api_key.pk).key_hash == ApiKey.hash(plaintext)
    key_page = admin_client.get(reverse("admin:events_app_apikey_change", args=[api_key.pk])).content.decode()
    assert plaintext not in key_page
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert api.post("/v1/events", make_install(), format="json").status_code == 202


def test_revoking_a_key_on_its_page_makes_the_api_refuse_it(admin_client, game_key, api, make_install):
    api_key = game_key[0]
    assert api.post("/v1/events", make_install(), format="json").status_code == 202

    response = admin_client.post(reverse("admin:events_app_apikey_revoke", args=[api_key.pk]), follow=True)

    assert "Revoked key" in next(str(m) for m in response.context["messages"])
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is not None
    assert api.post("/v1/events", make_install(), format="json").status_code == 401
    assert admin_client.get(reverse("admin:events_app_apikey_revoke", args=[api_key.pk])).status_code == 405


def test_rotating_keys_shows_the_new_plaintexts_and_revokes_the_old(admin_client, game_key, other_game_key):
    old = [game_key[0], other_game_key[0]]

    response = admin_client.post(
        reverse("admin:events_app_apikey_changelist"),
        {"action": "rotate_selected", "_selected_action": [k.pk for k in old]},
    )

    assert response.status_code == 200
    issued = response.context["issued"]
    assert {new.game.slug for new, _ in issued} == {"space-raiders", "moon-miners"}
    assert all(ApiKey.objects.get(pk=k.pk).revoked_at is not None for k in old)
    for new, plaintext in issued:
        assert ApiKey.objects.get(key_hash=ApiKey.hash(plaintext)).pk == new.pk
        assert new.name == "tests"


def test_revoke_action_reports_how_many_keys_it_revoked(admin_client, game_key, other_game_key):
    admin_client.post(reverse("admin:events_app_apikey_revoke", args=[other_game_key[0].pk]))

    response = admin_client.post(
        reverse("admin:events_app_apikey_changelist"),
        {"action": "revoke_selected", "_selected_action": [game_key[0].pk, other_game_key[0].pk]},
        follow=True,
    )

    assert "Revoked 1 key; skipped 1 already revoked." in [str(m) for m in response.context["messages"]]


def test_key_list_shows_last_use(admin_client, api, game_key, make_install):
    api.post("/v1/events", make_install(), format="json")
    ApiKey.objects.filter(pk=game_key[0].pk).update(last_used_at=datetime(2026, 11, 20, 8, 30, tzinfo=UTC))

    html = admin_client.get(reverse("admin:events_app_apikey_changelist")).content.decode()

    assert f"{game_key[0].prefix}…" in html
    assert '<td class="field-last_used">2026-11-20 08:30:00 UTC</td>' in html
    assert "key-active" in html


def test_every_list_writes_times_one_way_with_the_time_zone(admin_client, api, game_key, make_install):
    moment = datetime(2026, 11, 20, 8, 30, 5, tzinfo=UTC)
    (event,) = store(game_key[0], [make_install()])
    Event.objects.filter(pk=event.pk).update(received_at=moment)
    ApiKey.objects.filter(pk=game_key[0].pk).update(created_at=moment, revoked_at=moment)
    Game.objects.filter(pk=game_key[0].game_id).update(created_at=moment)
    RejectedEvent.objects.create(game=game_key[0].game, received_at=moment, errors={"player_id": ["bad"]})

    pages = {
        "events": (EVENTS_URL, ["received"]),
        "keys": (reverse("admin:events_app_apikey_changelist"), ["created", "revoked"]),
        "games": (reverse("admin:events_app_game_changelist"), ["created"]),
        "rejections": (reverse("admin:events_app_rejectedevent_changelist"), ["received"]),
        "key page": (reverse("admin:events_app_apikey_change", args=[game_key[0].pk]), []),
    }
    for name, (url, columns) in pages.items():
        html = admin_client.get(url).content.decode()
        assert "2026-11-20 08:30:05 UTC" in html, name
        for column in columns:
            cell = rf'<t[dh] class="field-{column}">(<a href="[^"]+">)?2026-11-20 08:30:05 UTC<'
            assert re.search(cell, html), (name, column)
        assert "Nov. 20, 2026" not in html, name


def test_read_only_operator_cannot_issue_or_revoke_keys(operator, game_key):
    assert operator.get(reverse("admin:events_app_apikey_add")).status_code == 403
    assert operator.post(reverse("admin:events_app_apikey_revoke", args=[game_key[0].pk])).status_code == 403
    assert ApiKey.objects.get(pk=game_key[0].pk).revoked_at is None


def test_rotating_a_key_needs_the_add_permission(client, game_key):
    """A rotation issues a new key: whoever may only change keys may revoke them, not create them."""
    client.force_login(make_user("key-changer", ["view_apikey", "change_apikey"]))
    api_key = game_key[0]
    change_url = reverse("admin:events_app_apikey_change", args=[api_key.pk])
    keys_url = reverse("admin:events_app_apikey_changelist")

    page = client.get(change_url).content.decode()
    listing = client.get(keys_url).content.decode()
    button = client.post(reverse("admin:events_app_apikey_rotate", args=[api_key.pk]))
    client.post(keys_url, {"action": "rotate_selected", "_selected_action": [api_key.pk]})

    assert 'id="revoke-button"' in page and 'id="rotate-button"' not in page
    assert "revoke_selected" in listing and "rotate_selected" not in listing
    assert button.status_code == 403
    assert list(ApiKey.objects.values_list("pk", "revoked_at")) == [(api_key.pk, None)]


def test_a_user_who_may_add_and_change_keys_rotates_them(client, game_key):
    client.force_login(make_user("key-manager", ["view_apikey", "change_apikey", "add_apikey"]))
    api_key = game_key[0]

    page = client.get(reverse("admin:events_app_apikey_change", args=[api_key.pk])).content.decode()
    response = client.post(reverse("admin:events_app_apikey_rotate", args=[api_key.pk]))

    assert 'id="rotate-button"' in page
    assert response.status_code == 200
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is not None
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 1


# -- custom event schemas -------------------------------------------------------------------------------------------


def register_form(game: Game, event_type: str, schema: object | str) -> dict:
    text = schema if isinstance(schema, str) else json.dumps(schema)
    return {"game": game.pk, "event_type": event_type, "schema": text}


def test_schema_list_shows_every_version_per_game_and_marks_the_latest(operator, game_key, other_game_key):
    game, other = game_key[0].game, other_game_key[0].game
    for schema in ({"type": "object"}, LEVEL_UP_SCHEMA):
        custom.register_schema(game=game, event_type="level_up", schema=schema)
    custom.register_schema(game=other, event_type="level_up", schema={"type": "object"})

    everything = operator.get(SCHEMAS_URL)
    one_game = operator.get(SCHEMAS_URL, {"game__id__exact": game.pk})

    rows = [(row.game.slug, row.event_type, row.version) for row in everything.context["cl"].result_list]
    assert rows == [("moon-miners", "level_up", 1), ("space-raiders", "level_up", 2), ("space-raiders", "level_up", 1)]
    assert [row.version for row in one_game.context["cl"].result_list] == [2, 1]
    html = one_game.content.decode()
    assert html.count('<span class="state-badge schema-latest">latest</span>') == 1
    assert 'id="register-schema-link"' not in html  # a reader may not register


def test_schema_page_shows_the_schema_pretty_printed_and_cannot_be_edited(operator, game_key):
    game = game_key[0].game
    first = custom.register_schema(game=game, event_type="level_up", schema=LEVEL_UP_SCHEMA)
    custom.register_schema(game=game, event_type="level_up", schema={"type": "object"})
    url = reverse("admin:events_app_eventschema_change", args=[first.pk])

    html = operator.get(url).content.decode()
    post = operator.post(url, {"schema": "{}"})

    assert '<pre class="json" id="schema-json">{\n  &quot;type&quot;: &quot;object&quot;,' in html
    assert "&quot;minimum&quot;: 1" in html
    assert "Superseded by version 2" in html
    assert 'name="_save"' not in html
    assert post.status_code == 403
    assert EventSchema.objects.get(pk=first.pk).schema == LEVEL_UP_SCHEMA
    assert operator.post(reverse("admin:events_app_eventschema_delete", args=[first.pk])).status_code == 403


def test_registering_a_schema_in_the_admin_adds_the_next_version_and_says_so(admin_client, admin_user, game_key):
    game = game_key[0].game
    first = custom.register_schema(game=game, event_type="level_up", schema={"type": "object"})

    response = admin_client.post(REGISTER_URL, register_form(game, "level_up", LEVEL_UP_SCHEMA), follow=True)

    latest = EventSchema.objects.get(game=game, event_type="level_up", version=2)
    assert latest.schema == LEVEL_UP_SCHEMA
    assert EventSchema.objects.get(pk=first.pk).schema == {"type": "object"}  # versions never change
    assert response.redirect_chain[-1][0] == reverse("admin:events_app_eventschema_change", args=[latest.pk])
    assert [str(m) for m in response.context["messages"]] == [
        "Registered level_up version 2 for space-raiders: new events of this type are checked against it within "
        "2 seconds on every server process."
    ]
    assert "The latest version: new events of this type from this game are checked against it." in (
        response.content.decode()
    )
    entry = LogEntry.objects.get(user=admin_user, action_flag=ADDITION)
    assert (entry.object_id, entry.get_change_message()) == (str(latest.pk), "Registered version 2.")


def test_a_schema_registered_in_the_admin_checks_the_games_next_events(admin_client, api, game_key):
    admin_client.post(REGISTER_URL, register_form(game_key[0].game, "level_up", LEVEL_UP_SCHEMA))

    valid = api.post("/v1/events", make_event("level_up", {"level": 3}), format="json")
    invalid = api.post("/v1/events", make_event("level_up", {"level": 0}), format="json")

    assert valid.status_code == 202
    assert invalid.status_code == 400
    assert "level" in invalid.json()["properties"]
    assert Event.objects.get(event_type="level_up").payload["event_schema_version"] == 1


@pytest.mark.parametrize(
    ("event_type", "schema", "field", "reason"),
    [
        ("level_up", '{"type": "object",', "schema", "Not JSON: "),
        ("level_up", {"type": "no-such-type"}, "schema", "Not a valid JSON Schema: "),
        ("level_up", {"minimum": "one"}, "schema", "Not a valid JSON Schema: "),
        ("level_up", '"object"', "schema", "A JSON Schema is an object (or true/false)."),
        ("purchase", {"type": "object"}, "event_type", "&#x27;purchase&#x27; is a built-in event type; its rules are"),
        ("Level Up", {"type": "object"}, "event_type", "&#x27;Level Up&#x27; is not a valid custom type name"),
    ],
)
def test_registering_an_invalid_schema_shows_the_reason_and_stores_nothing(
    admin_client, game_key, event_type, schema, field, reason
):
    response = admin_client.post(REGISTER_URL, register_form(game_key[0].game, event_type, schema))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Not registered: please correct the errors below." in html
    errors = html.split(f'class="form-row field-{field}"', 1)[1].split("</ul>", 1)[0]
    assert reason in errors
    assert not EventSchema.objects.exists()


def test_register_form_is_prefilled_with_the_latest_version_of_the_type(admin_client, game_key):
    game = game_key[0].game
    for schema in ({"type": "object"}, LEVEL_UP_SCHEMA):
        custom.register_schema(game=game, event_type="level_up", schema=schema)

    html = admin_client.get(REGISTER_URL, {"game": game.pk, "event_type": "level_up"}).content.decode()

    assert "Prefilled with version 2, the latest of level_up for space-raiders" in html
    assert "register it as version 3" in html
    assert "&quot;required&quot;: [\n    &quot;level&quot;\n  ]" in html
    assert 'value="level_up"' in html


def test_registering_a_schema_needs_the_add_permission(operator, client, game_key):
    form = register_form(game_key[0].game, "level_up", LEVEL_UP_SCHEMA)

    reader_get, reader_post = operator.get(REGISTER_URL), operator.post(REGISTER_URL, form)
    client.force_login(make_user("schema-author", [*READ_ONLY_PERMISSIONS, "add_eventschema"]))
    author_page = client.get(SCHEMAS_URL).content.decode()
    author_post = client.post(REGISTER_URL, form)

    assert (reader_get.status_code, reader_post.status_code) == (403, 403)
    assert 'id="register-schema-link"' in author_page
    assert author_post.status_code == 302
    assert list(EventSchema.objects.values_list("event_type", "version")) == [("level_up", 1)]


# -- exchange rates -------------------------------------------------------------------------------------------------


def test_rate_list_counts_purchases_and_ad_impressions_waiting_for_a_rate(admin_client, game_key, make_purchase):
    store(game_key[0], [make_purchase(), ad_impression(revenue="0.25", currency="EUR"), ad_impression()])

    html = admin_client.get(reverse("admin:events_app_exchangerate_changelist")).content.decode()

    assert "1 purchase and 1 ad impression lack a rate</a> in the base currency USD" in html
    assert f'href="{EVENTS_URL}?revenue__isnull=False&amp;revenue_base__isnull=True"' in html


def test_rate_list_says_when_every_event_with_revenue_is_converted(admin_client, game_key):
    store(game_key[0], [ad_impression()])  # no revenue: nothing to convert

    html = admin_client.get(reverse("admin:events_app_exchangerate_changelist")).content.decode()

    assert "Every purchase has its amount in the base currency USD. So has every ad impression with revenue." in html


# -- rejected events ------------------------------------------------------------------------------------------------


def test_rejected_events_are_listed_newest_first_with_their_reason(operator, api, other_game_key, make_install):
    api.post("/v1/events/batch", {"events": [make_install(player_id="")]}, format="json")
    api.post("/v1/events/batch", {"events": [make_install(event_type="levelup")]}, format="json")

    response = operator.get(reverse("admin:events_app_rejectedevent_changelist"))

    rows = list(response.context["cl"].result_list)
    assert [row.game.slug for row in rows] == ["space-raiders", "space-raiders"]
    assert rows[0].received_at >= rows[1].received_at
    html = response.content.decode()
    assert "player_id: This field may not be blank." in html
    assert "event_type:" in html


def test_rejected_events_filter_by_game(operator, api, other_game_key, make_install):
    api.post("/v1/events/batch", {"events": [make_install(player_id="")]}, format="json")
    RejectedEvent.objects.create(game=other_game_key[0].game, received_at=timezone.now(), errors={"x": ["bad"]})

    response = operator.get(
        reverse("admin:events_app_rejectedevent_changelist"), {"game__id__exact": other_game_key[0].game_id}
    )

    assert [row.game.slug for row in response.context["cl"].result_list] == ["moon-miners"]


def test_a_rejected_event_page_shows_errors_and_body_read_only(operator, api, make_install):
    api.post("/v1/events/batch", {"events": [make_install(player_id="")]}, format="json")
    rejection = RejectedEvent.objects.get()

    html = operator.get(reverse("admin:events_app_rejectedevent_change", args=[rejection.pk])).content.decode()

    assert "This field may not be blank." in html
    assert "&quot;event_type&quot;: &quot;install&quot;" in html
    assert 'name="_save"' not in html


# -- hostile query strings ------------------------------------------------------------------------------------------


OUT_OF_RANGE_DATES = [
    "received_at__year=9999",
    "received_at__year=9999&received_at__month=12",
    "received_at__year=9999&received_at__month=12&received_at__day=31",
    "received_at__year=2026&received_at__month=13",
    "received_at__year=2026&received_at__month=2&received_at__day=30",
    "received_at__month=13",
    "received_at__day=12",
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


@pytest.mark.parametrize(
    ("changelist", "query"),
    [
        ("event", "received_at__gte=0001-01-01T00:00:00%2B05:00"),
        ("event", "received_at__lt=9999-12-31T23:00:00-05:00"),
        ("game", "created_at__gte=0001-01-01T00:00:00%2B01:00"),
    ],
)
def test_times_whose_utc_falls_outside_years_1_to_9999_list_where_the_database_holds_them(
    admin_client, game_key, changelist, query
):
    """SQLite stores times as UTC text that Python must compute (and cannot, past the range); PostgreSQL need not."""
    url = reverse(f"admin:events_app_{changelist}_changelist")

    response = admin_client.get(f"{url}?{query}")

    if connection.vendor == "sqlite":
        assert (response.status_code, response["Location"]) == (302, f"{url}?e=1")
    else:
        assert response.status_code == 200


@pytest.mark.parametrize(
    ("changelist", "query"),
    [
        ("exchangerate", "date__year=9999"),
        ("exchangerate", "date__year=9998&date__month=12&date__day=32"),
        ("exchangerate", "date__gte=0000-12-31"),
        ("rejectedevent", "received_at__year__lt=10000"),
        ("apikey", "created_at__year__gt=99999"),
        ("eventschema", "created_at__year=10000"),
    ],
)
def test_out_of_range_dates_in_the_other_lists_are_refused_too(admin_client, game_key, changelist, query):
    url = reverse(f"admin:events_app_{changelist}_changelist")

    response = admin_client.get(f"{url}?{query}")

    assert response.status_code == 302
    assert response["Location"] == f"{url}?e=1"


def test_a_date_drill_down_to_the_last_representable_day_still_lists(operator, game_key, make_install):
    response = operator.get(EVENTS_URL, {"received_at__year": 9998, "received_at__month": 12, "received_at__day": 31})

    assert response.status_code == 200
    assert page_ids(response) == set()


@pytest.mark.parametrize(
    ("changelist", "query"),
    [
        ("event", "payload__icontains=store"),
        ("event", "payload__properties__country=FR"),
        ("event", "payload__context__ip=1.2.3.4"),
        ("event", "last_error__icontains=throttled"),
        ("event", "attempts_log__error__icontains=throttled"),
        ("event", "game__rejections__body__icontains=x"),
        ("rejectedevent", "body__icontains=player"),
        ("rejectedevent", "errors__icontains=required"),
        ("rejectedevent", "game__events__payload__icontains=x"),
        ("game", "events__payload__icontains=store"),
        ("eventschema", "schema__icontains=level"),
        ("apikey", "game__events__payload__icontains=store"),
    ],
)
def test_lookups_on_payloads_and_other_bulky_columns_are_refused(admin_client, game_key, changelist, query):
    """No index serves them: one such request would read the largest tables end to end."""
    response = admin_client.get(f"{reverse(f'admin:events_app_{changelist}_changelist')}?{query}")

    assert response.status_code == 400


def test_resend_all_matching_refuses_payload_lookups_too(resender, game_key, make_install):
    (event,) = store(game_key[0], [make_install()])
    set_state([event], DeliveryState.DEAD)

    response = resender.post(reverse("admin:events_app_event_resend_matching") + "?payload__icontains=store")

    assert response.status_code == 400
    assert Event.objects.get(pk=event.pk).delivery_state == DeliveryState.DEAD


def test_lookups_on_indexed_columns_still_filter(operator, game_key, make_install):
    alice, _bob = store(game_key[0], [make_install(player_id="alice"), make_install(player_id="bob")])

    response = operator.get(EVENTS_URL, {"player_id": "alice", "revenue__isnull": "True"})

    assert response.status_code == 200
    assert page_ids(response) == {alice.pk}


@pytest.mark.parametrize("query", ["game=%C2%B2&event_type=level_up", "game={game}&event_type=level%00up"])
def test_the_register_form_ignores_a_query_string_that_names_no_game_or_type(admin_client, game_key, query):
    """A superscript two passes str.isdigit() but not int(); PostgreSQL refuses NUL: the form opens empty, no 500."""
    custom.register_schema(game=game_key[0].game, event_type="level_up", schema=LEVEL_UP_SCHEMA)

    response = admin_client.get(f"{REGISTER_URL}?{query.format(game=game_key[0].game_id)}")

    assert response.status_code == 200
    assert response.context["latest"] is None
