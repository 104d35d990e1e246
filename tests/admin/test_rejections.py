"""The rejected event pages: newest first with their reason, filtered by game, errors and body read-only."""

import orjson
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from events_app.ingest.rejections import BODY_CHARS, record_rejections
from events_app.models import RejectedEvent


def test_rejected_events_give_their_reason_room_to_read_as_a_sentence(operator, api, make_install):
    api.post("/v1/events/batch", {"events": [make_install(player_id="")]}, format="json")

    html = operator.get(reverse("admin:events_app_rejectedevent_changelist")).content.decode()
    css = (settings.BASE_DIR / "events_app/static/events_app/admin.css").read_text()

    assert "events_app/admin.css" in html and '<td class="field-reason">' in html
    assert ".model-rejectedevent #result_list td.field-reason { min-width: 24em; }" in css
    assert ".model-rejectedevent #result_list td.field-body_excerpt code { word-break: break-all; }" in css
    assert "#result_list thead th { white-space: nowrap; }" in css  # no header clipped or broken


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


def test_a_rejected_events_errors_are_stored_cut_like_its_body(operator, game_key):
    # Errors quote what the client sent: 3,000 bad items, each message quoting 500 characters of it.
    quoted = "x" * 500
    errors = {"properties": {f"items[{index}]": [f"'{quoted}' is not one of the item ids"] for index in range(3000)}}
    record_rejections(game=game_key[0].game, received_at=timezone.now(), rejected=[({"event_type": "x"}, errors)])
    rejection = RejectedEvent.objects.get()

    stored = orjson.dumps(rejection.errors).decode()
    html = operator.get(reverse("admin:events_app_rejectedevent_change", args=[rejection.pk])).content.decode()

    assert len(stored) < 2 * BODY_CHARS  # was 1.5 million characters
    assert rejection.errors["properties"]["items[0]"] == [f"'{quoted}' is not one of the item ids"]
    assert rejection.errors["properties"]["…"].endswith(" more")  # how many were left out
    assert "is not one of the item ids" in html
