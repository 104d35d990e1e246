"""Hostile bytes in an event: refused with a 400 naming the place, never a 500, on SQLite and PostgreSQL alike."""

import uuid

import pytest

from events_app.models import Event
from tests.conftest import now_rfc3339

pytestmark = pytest.mark.django_db

NUL = "\x00"


def install(**fields) -> dict:
    body = {
        "event_id": str(uuid.uuid4()),
        "event_type": "install",
        "player_id": "player-1",
        "occurred_at": now_rfc3339(),
        "properties": {"store": "app_store"},
    }
    body.update(fields)
    return body


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"properties": {"note": f"a{NUL}b"}}, {"properties": {"note": ["Contains a NUL character"]}}),
        ({"properties": {f"k{NUL}": "v"}}, {"properties": {f"k{NUL}": ["Contains a NUL character"]}}),
        ({"properties": {"tags": ["ok", f"x{NUL}"]}}, {"properties": {"tags": ["Contains a NUL character"]}}),
        ({"context": {"device": {"name": NUL}}}, {"context": {"device": ["Contains a NUL character"]}}),
    ],
    ids=["property value", "property key", "inside a nested list", "nested context"],
)
def test_a_nul_character_anywhere_in_properties_or_context_is_refused_naming_the_key_holding_it(api, fields, expected):
    response = api.post("/v1/events", install(**fields), format="json")

    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == set(expected)

    def messages_match(got, want):
        if isinstance(want, list):
            return isinstance(got, list) and got[0].startswith(want[0])
        return set(got) == set(want) and all(messages_match(got[key], want[key]) for key in want)

    assert messages_match(errors, expected), errors
    assert not Event.objects.exists()


def test_a_nul_in_a_custom_events_properties_is_refused_too(api, game_key):
    from events_app.models import UnknownEventPolicy

    game = game_key[0].game
    game.unknown_events = UnknownEventPolicy.ACCEPT
    game.save()

    response = api.post("/v1/events", install(event_type="level_up", properties={"hero": f"ay{NUL}la"}), format="json")

    assert response.status_code == 400
    assert set(response.json()["properties"]) == {"hero"}


def test_one_poisoned_event_does_not_fail_the_rest_of_its_batch(api):
    good, bad = install(), install(properties={"note": NUL})

    answer = api.post("/v1/events/batch", {"events": [good, bad]}, format="json").json()

    assert (answer["accepted"], answer["rejected"]) == (1, 1)
    assert [str(event_id) for event_id in Event.objects.values_list("event_id", flat=True)] == [good["event_id"]]


def test_the_text_of_an_escaped_nul_is_an_ordinary_string_and_is_kept(api):
    text = "\\u0000 and \\\\u0000 are six and seven characters"

    response = api.post("/v1/events", install(properties={"note": text}), format="json")

    assert response.status_code == 202
    assert Event.objects.get().payload["properties"]["note"] == text
