"""The exchange rate list: how many purchases and ad impressions still wait for a rate."""

from django.urls import reverse

from tests.admin.helpers import EVENTS_URL, ad_impression, store


def test_rate_list_counts_purchases_and_ad_impressions_waiting_for_a_rate(admin_client, game_key, make_purchase):
    store(game_key[0], [make_purchase(), ad_impression(revenue="0.25", currency="EUR"), ad_impression()])

    html = admin_client.get(reverse("admin:events_app_exchangerate_changelist")).content.decode()

    assert "1 purchase and 1 ad impression lack a rate</a> in the base currency USD" in html
    assert f'href="{EVENTS_URL}?revenue__isnull=False&amp;revenue_base__isnull=True"' in html


def test_rate_list_says_when_every_event_with_revenue_is_converted(admin_client, game_key):
    store(game_key[0], [ad_impression()])  # no revenue: nothing to convert

    html = admin_client.get(reverse("admin:events_app_exchangerate_changelist")).content.decode()

    assert "Every purchase has its amount in the base currency USD. So has every ad impression with revenue." in html
