"""Confirmations in a real browser: rotating a key (its grace, its end ended early), a schema that rejects events."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from events_app.api.keys import issue_api_key
from events_app.event_types import custom
from events_app.ingest.service import ingest_events
from events_app.models import ApiKey, EventSchema

pytestmark = pytest.mark.e2e


def test_operator_rotates_a_key_with_a_grace_then_ends_the_grace_early(operator_login, screenshot):
    old, _ = issue_api_key(game_slug="space-raiders", name="ios-production")
    ApiKey.objects.filter(pk=old.pk).update(last_used_at=datetime(2026, 11, 20, 8, 30, tzinfo=UTC))
    page = operator_login()

    page.goto(f"/admin/events_app/apikey/{old.pk}/change/")
    page.click("#rotate-button")
    expect(page.locator("#confirm-keys .last-used")).to_have_text("2026-11-20 08:30:00 UTC")
    default = page.locator("input[name=grace_hours][value='168']")
    expect(default).to_be_checked()
    expect(page.locator("label", has=default)).to_contain_text("for 7 days (the default), until ")
    screenshot("key-rotate-confirm.png", full_page=True)
    assert ApiKey.objects.count() == 1  # nothing happens before the answer

    page.check("input[name=grace_hours][value='720']")
    page.click("#confirm-rotate")

    expect(page.locator(".plaintext-key")).to_have_count(1)
    old.refresh_from_db()
    assert timedelta(days=30) - timedelta(minutes=1) < old.revoked_at - timezone.now() <= timedelta(days=30)
    expect(page.locator(".old-key-end")).to_contain_text(f"works until {old.revoked_at:%Y-%m-%d %H:%M:%S} UTC")

    page.goto("/admin/events_app/apikey/?state=expiring")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list td.field-revoked")).to_have_text(f"{old.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
    page.goto(f"/admin/events_app/apikey/{old.pk}/change/")
    page.click("#revoke-button")
    expect(page.locator("#confirm-keys .works-until")).to_contain_text(f"{old.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
    page.click("#confirm-revoke")

    expect(page.locator("ul.messagelist")).to_contain_text(f"Revoked key {old.prefix}…")
    old.refresh_from_db()
    assert not old.is_active


def test_operator_sees_what_a_stricter_schema_would_reject_before_registering_it(operator_login):
    custom.clear_cache()  # compiled schemas are cached per process, by game id
    api_key, _ = issue_api_key(game_slug="space-raiders")
    custom.register_schema(game=api_key.game, event_type="level_up", schema={"type": "object"})
    raw = [
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "level_up",
            "player_id": "player-1",
            "occurred_at": timezone.now().isoformat(),
            "properties": properties,
        }
        for properties in ({"level": 0}, {"level": 4})
    ]
    assert ingest_events(api_key=api_key, raw_events=raw, received_at=timezone.now()).rejected == 0
    page = operator_login()

    page.goto(f"/admin/events_app/eventschema/add/?game={api_key.game.pk}&event_type=level_up")
    page.fill("#id_schema", '{"type": "object", "properties": {"level": {"type": "integer", "minimum": 1}}}')
    page.click("#register-schema")

    expect(page.locator("#impact-summary")).to_contain_text("1 would now be rejected")
    expect(page.locator("#impact-examples")).to_contain_text("properties.level: 0 is less than the minimum of 1")
    assert EventSchema.objects.count() == 1
    page.click("#confirm-register")

    expect(page.locator("ul.messagelist")).to_contain_text("Registered level_up version 2 for space-raiders")
    assert EventSchema.objects.count() == 2
