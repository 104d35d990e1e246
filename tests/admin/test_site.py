"""What every page of the console shares: the View site link, one time format, list queries refused alike."""

import re
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.urls import reverse

from events_app.models import ApiKey, Event, Game, RejectedEvent, SuppressedPlayer
from tests.admin.helpers import EVENTS_URL, store


def test_view_site_opens_a_page_that_exists(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()

    view_site = re.search(r'<a href="([^"]+)">View site</a>', html).group(1)
    assert view_site == "/api/docs/"
    assert admin_client.get(view_site).status_code == 200


def test_every_list_writes_times_one_way_with_the_time_zone(admin_client, api, game_key, make_install):
    moment = datetime(2026, 11, 20, 8, 30, 5, tzinfo=UTC)
    (event,) = store(game_key[0], [make_install()])
    Event.objects.filter(pk=event.pk).update(received_at=moment)
    ApiKey.objects.filter(pk=game_key[0].pk).update(created_at=moment, revoked_at=moment)
    Game.objects.filter(pk=game_key[0].game_id).update(created_at=moment)
    RejectedEvent.objects.create(game=game_key[0].game, received_at=moment, errors={"player_id": ["bad"]})
    erased = SuppressedPlayer.objects.create(game=game_key[0].game, player_id="gone", created_at=moment)

    pages = {
        "events": (EVENTS_URL + "?received=all", ["received"]),
        "keys": (reverse("admin:events_app_apikey_changelist"), ["created", "revoked"]),
        "games": (reverse("admin:events_app_game_changelist"), ["created"]),
        "rejections": (reverse("admin:events_app_rejectedevent_changelist"), ["received"]),
        "key page": (reverse("admin:events_app_apikey_change", args=[game_key[0].pk]), []),
        "suppressed players": (reverse("admin:events_app_suppressedplayer_changelist"), ["erased"]),
        "suppressed player": (reverse("admin:events_app_suppressedplayer_change", args=[erased.pk]), []),
    }
    for name, (url, columns) in pages.items():
        html = admin_client.get(url).content.decode()
        assert "2026-11-20 08:30:05 UTC" in html, name
        for column in columns:
            cell = rf'<t[dh] class="field-{column}">(<a href="[^"]+">)?2026-11-20 08:30:05 UTC<'
            assert re.search(cell, html), (name, column)
        assert "Nov. 20, 2026" not in html, name
        assert " a.m." not in html, name


def test_the_header_and_the_tab_say_the_products_name(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()

    assert '<a href="/admin/">Player event tracker</a>' in html
    assert "<title>Operator console | Player event tracker</title>" in html
    assert "Django administration" not in html


# -- hostile query strings ------------------------------------------------------------------------------------------


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


@pytest.mark.parametrize(
    ("changelist", "query"),
    [
        ("event", "payload__icontains=store"),
        ("event", "payload__properties__country=FR"),
        ("event", "payload__context__ip=1.2.3.4"),
        ("event", "issue__last_error__icontains=throttled"),
        ("event", "issue__payload__icontains=store"),
        ("event", "issue__delivered_by__error__icontains=throttled"),
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
