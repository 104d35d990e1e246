"""Custom event types: per-game JSON Schemas, their versions, the unknown-type policy, and the event_schema command."""

import json
import uuid
from io import StringIO

import orjson
import pytest
from django.core.management import CommandError, call_command

from events_app.delivery import engine
from events_app.event_types import custom
from events_app.models import Event, EventSchema, Game, UnknownEventPolicy
from tests.support.events import now_rfc3339

pytestmark = pytest.mark.django_db

EVENTS = "/v1/events"
LEVEL_UP = {
    "type": "object",
    "properties": {
        "level": {"type": "integer", "minimum": 1},
        "hero": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 16}}},
    },
    "required": ["level"],
}


@pytest.fixture
def game(game_key) -> Game:
    return game_key[0].game


def level_up(properties: dict | None = None, **fields) -> dict:
    body = {
        "event_id": str(uuid.uuid4()),
        "event_type": "level_up",
        "player_id": "player-1",
        "occurred_at": now_rfc3339(),
        "properties": {"level": 2} if properties is None else properties,
    }
    body.update(fields)
    return body


def register(game: Game, schema: dict = LEVEL_UP, event_type: str = "level_up") -> int:
    return custom.register_schema(game=game, event_type=event_type, schema=schema).version


# The policy for types without a schema


def test_a_custom_type_without_a_schema_is_rejected_by_default_naming_event_type(api, game):
    assert game.unknown_events == UnknownEventPolicy.REJECT

    response = api.post(EVENTS, level_up(), format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"event_type"}
    assert "level_up" in response.json()["event_type"][0]
    assert not Event.objects.exists()


def test_a_custom_type_without_a_schema_is_accepted_unchecked_when_the_game_accepts_them(api, game, moto_firehose):
    game.unknown_events = UnknownEventPolicy.ACCEPT
    game.save()
    body = level_up({"anything": ["goes", 1]})

    response = api.post(EVENTS, body, format="json")
    engine.deliver_due()

    assert response.status_code == 202
    (line,) = read_lines(moto_firehose)
    assert line["event_type"] == "level_up"
    assert line["properties"] == {"anything": ["goes", 1]}
    assert "event_schema_version" in line and line["event_schema_version"] is None


def test_the_policy_of_one_game_does_not_apply_to_another(api, game):
    other = Game.objects.create(slug="other-game", unknown_events=UnknownEventPolicy.ACCEPT)
    assert other.unknown_events == UnknownEventPolicy.ACCEPT

    assert api.post(EVENTS, level_up(), format="json").status_code == 400


@pytest.mark.parametrize("name", ["Level_Up", "level-up", "1level", "_level", "l" * 65, "level up", "level_up\n"])
def test_malformed_custom_type_names_are_rejected_whatever_the_policy(api, game, name):
    game.unknown_events = UnknownEventPolicy.ACCEPT
    game.save()

    response = api.post(EVENTS, level_up(event_type=name), format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"event_type"}


def test_a_64_character_custom_type_name_is_accepted(api, game):
    name = "l" * 64
    register(game, {"type": "object"}, event_type=name)

    assert api.post(EVENTS, level_up(event_type=name), format="json").status_code == 202
    assert Event.objects.get().event_type == name


# Validation against the registered schema


def test_an_event_valid_against_the_schema_is_accepted_with_its_version_in_the_line(api, game, moto_firehose):
    register(game)
    body = level_up({"level": 7, "hero": {"name": "Ayla"}, "extra": True})

    response = api.post(EVENTS, body, format="json")
    engine.deliver_due()

    assert response.status_code == 202
    (line,) = read_lines(moto_firehose)
    assert line["event_schema_version"] == 1
    assert line["properties"] == {"level": 7, "hero": {"name": "Ayla"}, "extra": True}
    assert Event.objects.get().payload["event_schema_version"] == 1


def test_a_property_breaking_the_schema_is_named_by_its_path(api, game):
    register(game)

    response = api.post(EVENTS, level_up({"level": 0}), format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["properties"]
    assert response.json() == {"properties": {"level": ["0 is less than the minimum of 1"]}}
    assert not Event.objects.exists()


def test_a_missing_required_property_is_named_itself(api, game):
    register(game)

    response = api.post(EVENTS, level_up({}), format="json")

    assert response.status_code == 400
    assert response.json() == {"properties": {"level": ['"level" is a required property']}}


def test_a_nested_property_breaking_the_schema_is_named_by_its_nested_path(api, game):
    register(game)

    response = api.post(EVENTS, level_up({"level": "two", "hero": {"name": "x" * 17}}), format="json")

    errors = response.json()["properties"]
    assert set(errors) == {"level", "hero"}
    assert list(errors["hero"]) == ["name"]


def test_schema_errors_and_other_bad_fields_come_in_one_answer(api, game):
    register(game)

    response = api.post(EVENTS, level_up({"level": -1}, player_id="", platform="amiga"), format="json")

    assert set(response.json()) == {"properties", "player_id", "platform"}


def test_in_a_batch_events_breaking_the_schema_are_rejected_and_the_others_kept(api, game):
    register(game)
    good, bad = level_up({"level": 3}), level_up({"level": "3"})

    answer = api.post("/v1/events/batch", {"events": [good, bad]}, format="json").json()

    assert (answer["accepted"], answer["rejected"]) == (1, 1)
    assert answer["results"][1]["errors"] == {"properties": {"level": ['"3" is not of type "integer"']}}
    assert [str(e) for e in Event.objects.values_list("event_id", flat=True)] == [good["event_id"]]


def test_the_schemas_of_one_game_do_not_apply_to_another(api, game):
    other = Game.objects.create(slug="other-game")
    register(other)

    assert api.post(EVENTS, level_up(), format="json").status_code == 400  # this game has none: rejected


# Versions


class FakeClock:
    """A monotonic clock the test moves on purpose (the schema cache reads time.monotonic)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(custom.time, "monotonic", fake)
    return fake


def test_a_new_version_applies_to_events_after_the_cache_time_and_not_before(api, game, clock, settings):
    settings.EVENTS_SCHEMA_CACHE_SECONDS = 2.0
    register(game)
    assert api.post(EVENTS, level_up({"level": 1}), format="json").status_code == 202

    # Version 2 asks for a string level.
    assert register(game, {**LEVEL_UP, "properties": {"level": {"type": "string"}}}) == 2
    clock.now += 1.9
    assert api.post(EVENTS, level_up({"level": 1}), format="json").status_code == 202  # still version 1 here
    clock.now += 0.2

    assert api.post(EVENTS, level_up({"level": 1}), format="json").status_code == 400
    response = api.post(EVENTS, level_up({"level": "one"}), format="json")
    assert response.status_code == 202
    assert Event.objects.get(event_id=response.json()["event_id"]).payload["event_schema_version"] == 2


def test_a_schema_registered_for_a_type_that_was_unknown_applies_after_the_cache_time(api, game, clock):
    assert api.post(EVENTS, level_up(), format="json").status_code == 400
    register(game)
    clock.now += 5

    assert api.post(EVENTS, level_up(), format="json").status_code == 202


def test_registered_versions_count_up_per_game_and_type():
    first, second = Game.objects.create(slug="g1"), Game.objects.create(slug="g2")

    assert [register(first), register(first), register(second), register(first, event_type="boss_killed")] == [
        1,
        2,
        1,
        1,
    ]
    assert custom.registered_types(game=first) == [("boss_killed", 1), ("level_up", 2)]


@pytest.mark.parametrize("name", ["purchase", "install", "session_end", "identify"])
def test_built_in_types_cannot_get_a_schema(game, name):
    with pytest.raises(custom.InvalidSchemaError, match="built-in"):
        register(game, event_type=name)
    assert not EventSchema.objects.exists()


@pytest.mark.parametrize(
    "schema", [{"type": "nope"}, {"properties": {"level": {"minimum": "one"}}}, {"required": "level"}, [], "object"]
)
def test_invalid_json_schemas_are_refused(game, schema):
    with pytest.raises(custom.InvalidSchemaError):
        register(game, schema)
    assert not EventSchema.objects.exists()


# The event_schema command


def run(*args: str) -> str:
    out = StringIO()
    call_command("event_schema", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_command_registers_a_file_and_prints_the_version_alone_on_the_last_line(game, tmp_path):
    path = tmp_path / "level_up.json"
    path.write_text(json.dumps(LEVEL_UP))

    assert run(game.slug, "level_up", str(path)).splitlines()[-1] == "1"
    assert run(game.slug, "level_up", str(path)).splitlines()[-1] == "2"
    assert EventSchema.objects.get(version=2).schema == LEVEL_UP


def test_the_command_lists_each_type_with_its_latest_version(game):
    register(game)
    register(game)
    register(game, event_type="boss_killed")

    assert run(game.slug, "--list").splitlines() == ["boss_killed\t1", "level_up\t2"]


def test_the_command_sets_the_games_policy(game):
    run(game.slug, "--unknown-events", "accept")
    game.refresh_from_db()
    assert game.unknown_events == UnknownEventPolicy.ACCEPT

    run(game.slug, "--unknown-events", "reject")
    game.refresh_from_db()
    assert game.unknown_events == UnknownEventPolicy.REJECT


@pytest.mark.parametrize(
    ("event_type", "content", "reason"),
    [
        ("purchase", json.dumps(LEVEL_UP), "built-in"),
        ("level_up", '{"type": "nope"}', "Not a valid JSON Schema"),
        ("level_up", "{not json", "not JSON"),
        ("Level-Up", json.dumps(LEVEL_UP), "not a valid custom type name"),
    ],
)
def test_the_command_refuses_bad_input_with_the_reason(game, tmp_path, event_type, content, reason):
    path = tmp_path / "schema.json"
    path.write_text(content)

    with pytest.raises(CommandError, match=reason):
        run(game.slug, event_type, str(path))
    assert not EventSchema.objects.exists()


def test_the_command_refuses_an_unknown_game(db, tmp_path):
    with pytest.raises(CommandError, match="No game"):
        run("no-such-game", "--list")


def read_lines(s3) -> list[dict]:
    lines = []
    for item in s3.list_objects_v2(Bucket="game-events").get("Contents", []):
        lines.extend(
            orjson.loads(line)
            for line in s3.get_object(Bucket="game-events", Key=item["Key"])["Body"].read().splitlines()
        )
    return lines
