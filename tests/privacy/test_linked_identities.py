"""Erasure follows a player's linked identities: the anonymousIds sent with its userId and the ids an alias joined."""

import base64
from io import StringIO

import orjson
import pytest
from django.core.management import call_command
from django.test import Client

from events_app.models import Event, LinkedIdentity, SuppressedPlayer
from events_app.privacy import identities
from tests.support.events import now_rfc3339


def segment(client: Client, key: str, path: str, message: dict) -> None:
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    response = client.post(path, orjson.dumps(message), content_type="application/json", HTTP_AUTHORIZATION=auth)
    assert response.status_code == 200, response.content


def track(**ids) -> dict:
    return {"type": "track", "event": "Level Up", "timestamp": now_rfc3339(), "properties": {"level": 2}, **ids}


def erase(*args: str) -> str:
    out = StringIO()
    call_command("erase_player", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def linked_player(client, game_key, settings):
    """u-er seen with anonymousId anon-1 and aliased from anon-2; anon-1's and anon-2's own events stored too."""
    game = game_key[0].game
    game.unknown_events = "accept"
    game.save()
    key = game_key[1]
    segment(client, key, "/v1/track", track(anonymousId="anon-1"))
    segment(client, key, "/v1/track", track(anonymousId="anon-2"))
    segment(client, key, "/v1/track", track(userId="u-er", anonymousId="anon-1"))
    segment(client, key, "/v1/alias", {"userId": "u-er", "previousId": "anon-2", "timestamp": now_rfc3339()})
    segment(client, key, "/v1/track", track(userId="someone-else", anonymousId="anon-9"))
    return game


def test_segment_messages_record_the_anonymous_id_and_the_alias_of_a_user(linked_player):
    assert identities.linked_ids(game=linked_player, player_id="u-er") == ["anon-1", "anon-2"]
    assert identities.linked_ids(game=linked_player, player_id="anon-2") == ["u-er"]  # an alias joins both ways
    assert identities.linked_ids(game=linked_player, player_id="anon-1") == []  # a shared device links no one back


def test_erasing_a_user_erases_and_suppresses_its_linked_ids_and_prints_them_in_the_sql(linked_player):
    output = erase(linked_player.slug, "u-er")

    assert "deleted events=4 issues=0 rejected_events=0" in output
    assert "linked identities (erased and suppressed too): 'anon-1', 'anon-2'" in output
    assert "record:player_id::STRING IN ('u-er', 'anon-1', 'anon-2');" in output
    assert sorted(Event.objects.values_list("player_id", flat=True)) == ["someone-else"]
    assert sorted(SuppressedPlayer.objects.values_list("player_id", flat=True)) == ["anon-1", "anon-2", "u-er"]
    assert not LinkedIdentity.objects.filter(player_id="u-er").exists()


def test_later_events_of_a_linked_id_are_suppressed_on_both_apis(linked_player, client, game_key, api, make_install):
    erase(linked_player.slug, "u-er")

    native = api.post("/v1/events", make_install(player_id="anon-1"), format="json")
    segment(client, game_key[1], "/v1/track", track(anonymousId="anon-2"))

    assert native.json()["status"] == "suppressed"
    assert sorted(Event.objects.values_list("player_id", flat=True)) == ["someone-else"]


def test_ids_a_column_cannot_hold_are_not_linked(client, game_key):
    game = game_key[0].game
    game.unknown_events = "accept"
    game.save()

    segment(client, game_key[1], "/v1/track", track(userId="u-1", anonymousId="a" * 129))
    segment(client, game_key[1], "/v1/track", track(userId="u-2", anonymousId="nul\x00id"))

    assert not LinkedIdentity.objects.exists()
    assert list(Event.objects.values_list("player_id", flat=True)) == ["u-1"]  # a NUL anywhere refuses the message
