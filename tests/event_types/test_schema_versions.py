"""`event_schema_version`: a custom event checked against the version it names, else the latest; built-ins refuse it."""

import pytest

from events_app.event_types import custom
from events_app.models import Event, Game, UnknownEventPolicy
from tests.event_types.test_custom_types import EVENTS, level_up, register

pytestmark = pytest.mark.django_db

BATCH = "/v1/events/batch"
# Version 2 is stricter than version 1: it requires a `world` that older builds never send.
V1 = {"type": "object", "properties": {"level": {"type": "integer", "minimum": 1}}, "required": ["level"]}
V2 = {**V1, "properties": {**V1["properties"], "world": {"type": "string"}}, "required": ["level", "world"]}


@pytest.fixture
def game(game_key) -> Game:
    game = game_key[0].game
    register(game, V1)
    register(game, V2)
    return game


def test_an_event_naming_an_older_version_is_checked_against_it_and_its_line_names_it(api, game):
    response = api.post(EVENTS, level_up({"level": 3}, event_schema_version=1), format="json")

    assert response.status_code == 202
    assert Event.objects.get().payload["event_schema_version"] == 1


def test_an_event_naming_no_version_is_checked_against_the_latest(api, game):
    refused = api.post(EVENTS, level_up({"level": 3}), format="json")
    accepted = api.post(EVENTS, level_up({"level": 3, "world": "w1"}), format="json")

    assert refused.status_code == 400
    assert refused.json() == {"properties": {"world": ['"world" is a required property']}}
    assert accepted.status_code == 202
    assert Event.objects.get().payload["event_schema_version"] == 2


def test_a_pinned_version_still_checks_the_properties(api, game):
    response = api.post(EVENTS, level_up({"level": 0}, event_schema_version=1), format="json")

    assert response.status_code == 400
    assert response.json() == {"properties": {"level": ["0 is less than the minimum of 1"]}}


def test_a_version_never_registered_is_refused_naming_event_schema_version(api, game):
    response = api.post(EVENTS, level_up({"level": 3, "world": "w1"}, event_schema_version=3), format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["event_schema_version"]
    assert "no registered version 3" in response.json()["event_schema_version"][0]
    assert "the latest is 2" in response.json()["event_schema_version"][0]
    assert not Event.objects.exists()


def test_a_version_registered_after_a_refusal_is_accepted_once_registered(api, game):
    body = level_up({"level": 3}, event_schema_version=3)
    assert api.post(EVENTS, body, format="json").status_code == 400

    register(game, V1)
    custom.clear_cache()  # what EVENTS_SCHEMA_CACHE_SECONDS does in time on every process

    assert api.post(EVENTS, {**body, "event_id": level_up()["event_id"]}, format="json").status_code == 202


def test_a_version_of_a_game_without_any_schema_is_refused_even_when_it_accepts_unknown_types(api, game_key):
    game = game_key[0].game
    game.unknown_events = UnknownEventPolicy.ACCEPT
    game.save()

    response = api.post(EVENTS, level_up(event_schema_version=1), format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["event_schema_version"]


def test_a_built_in_event_naming_a_version_is_refused(api, game, make_install):
    response = api.post(EVENTS, make_install(event_schema_version=1), format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["event_schema_version"]
    assert "Built-in" in response.json()["event_schema_version"][0]


def test_a_built_in_event_with_a_null_version_is_accepted_without_one_in_its_line(api, game, make_install):
    response = api.post(EVENTS, make_install(event_schema_version=None), format="json")

    assert response.status_code == 202
    assert "event_schema_version" not in Event.objects.get().payload


@pytest.mark.parametrize("value", ["1", 0, -1, True, 1.0, [1], {"v": 1}])
def test_a_version_that_is_not_an_integer_of_at_least_1_is_refused(api, game, value):
    response = api.post(EVENTS, level_up({"level": 3}, event_schema_version=value), format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["event_schema_version"]


def test_a_batch_checks_each_event_against_its_own_version(api, game):
    events = [
        level_up({"level": 3}, event_schema_version=1),
        level_up({"level": 3, "world": "w1"}, event_schema_version=2),
        level_up({"level": 3, "world": "w1"}),
        level_up({"level": 3}, event_schema_version=2),
        level_up({"level": 3}, event_schema_version=9),
    ]

    response = api.post(BATCH, {"events": events}, format="json")

    results = response.json()["results"]
    assert [result["status"] for result in results] == ["accepted", "accepted", "accepted", "rejected", "rejected"]
    assert list(results[3]["errors"]) == ["properties"]
    assert list(results[4]["errors"]) == ["event_schema_version"]
    versions = {str(e.event_id): e.payload["event_schema_version"] for e in Event.objects.all()}
    assert [versions[body["event_id"]] for body in events[:3]] == [1, 2, 2]


def test_a_huge_version_number_is_refused_not_an_error(api, game):
    response = api.post(EVENTS, level_up({"level": 3}, event_schema_version=2**70), format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["event_schema_version"]
