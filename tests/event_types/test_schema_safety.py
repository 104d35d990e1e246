"""Custom schemas are self-contained and cheap to check: nothing is fetched, errors are bounded, patterns are linear.

The contract: a `$ref` points only inside the same document (`#...`), `$schema`, when given, is
draft 2020-12, the server never fetches anything to compile or check a schema; anything else
is refused at registration with the reason (the command exits with status 1). A schema stored
before these rules that breaks them refuses its events with a 400 naming `properties`, never a
500 and never a fetch.
"""

import json
import time
import tracemalloc
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from events_app.event_types import custom
from events_app.models import Event, EventSchema, Game
from tests.event_types.remote import SECRET, RecordingServer
from tests.support.events import now_rfc3339

pytestmark = pytest.mark.django_db

EVENTS = "/v1/events"


@pytest.fixture
def remote():
    server = RecordingServer()
    yield server
    server.close()


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret.json"
    path.write_text(json.dumps({"type": "string", "SecretAccessKey": SECRET}))
    return path


@pytest.fixture
def game(game_key) -> Game:
    return game_key[0].game


def outside_schemas(remote: RecordingServer, secret_file) -> list[dict]:
    """Schemas naming something outside themselves, each refused with its reason."""
    return [
        {"$ref": f"{remote.url}/creds.json#/SecretAccessKey"},
        {"type": "object", "properties": {"key": {"$ref": f"{remote.url}/creds.json"}}},
        {"$ref": secret_file.as_uri()},
        {"$ref": f"{secret_file.as_uri()}#/SecretAccessKey"},
        {"$defs": {"item": {"$ref": "other.json"}}, "properties": {"a": {"$ref": "#/$defs/item"}}},
        {"$dynamicRef": f"{remote.url}/dynamic.json"},
        {"$schema": f"{remote.url}/meta.json", "type": "object"},
        {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},
        {"$defs": {"x": {"$id": "http://example.invalid/x", "$schema": f"{remote.url}/meta.json"}}},
    ]


OUTSIDE_REASONS = ["points outside"] * 6 + ["is not draft 2020-12"] * 3


def level_up(properties: dict) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "level_up",
        "player_id": "player-1",
        "occurred_at": now_rfc3339(),
        "properties": properties,
    }


def run_command(*args: str) -> str:
    out = StringIO()
    call_command("event_schema", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


# 1. Nothing is ever fetched


def test_schemas_naming_anything_outside_themselves_are_refused_with_the_reason_and_nothing_fetched(
    game, remote, secret_file
):
    for schema, reason in zip(outside_schemas(remote, secret_file), OUTSIDE_REASONS, strict=True):
        with pytest.raises(custom.InvalidSchemaError, match=reason) as refused:
            custom.register_schema(game=game, event_type="level_up", schema=schema)
        assert SECRET not in str(refused.value)

    assert remote.paths == []
    assert not EventSchema.objects.exists()


def test_the_command_exits_with_status_1_and_the_reason_and_fetches_nothing(game, remote, secret_file, tmp_path):
    path = tmp_path / "schema.json"
    for schema, reason in zip(outside_schemas(remote, secret_file), OUTSIDE_REASONS, strict=True):
        path.write_text(json.dumps(schema))
        with pytest.raises(CommandError, match=reason) as refused:
            run_command(game.slug, "level_up", str(path))
        assert refused.value.returncode == 1
        assert SECRET not in str(refused.value)

    assert remote.paths == []
    assert not EventSchema.objects.exists()


def test_refs_inside_the_document_and_the_draft_2020_12_schema_uri_are_accepted(api, game):
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {"level": {"type": "integer", "minimum": 1}},
        "type": "object",
        "properties": {"level": {"$ref": "#/$defs/level"}},
        "required": ["level"],
    }
    custom.register_schema(game=game, event_type="level_up", schema=schema)

    assert api.post(EVENTS, level_up({"level": 3}), format="json").status_code == 202
    response = api.post(EVENTS, level_up({"level": 0}), format="json")
    assert response.json() == {"properties": {"level": ["0 is less than the minimum of 1"]}}


def stored_before_the_rules(game: Game, schema: dict) -> None:
    """Store `schema` as version 1 directly, as a registration before the rules would have."""
    EventSchema.objects.create(game=game, event_type="level_up", version=1, schema=schema)
    custom.clear_cache()


@pytest.mark.parametrize(
    "make_schema",
    [
        lambda remote, secret: {"$ref": f"{remote.url}/creds.json#/SecretAccessKey"},
        lambda remote, secret: {"properties": {"level": {"$ref": secret.as_uri()}}},
        lambda remote, secret: {"$schema": f"{remote.url}/meta.json", "type": "object"},
        lambda remote, secret: {"properties": {"name": {"type": "string", "pattern": "(?<=a+)b"}}},
    ],
    ids=["http-ref", "file-ref", "http-schema", "look-behind"],
)
def test_events_of_a_stored_schema_breaking_the_rules_get_a_clear_400_and_nothing_is_fetched(
    api, game, remote, secret_file, make_schema
):
    stored_before_the_rules(game, make_schema(remote, secret_file))
    body = level_up({"level": 3, "name": "a" * 20_000 + "c"})

    started = time.perf_counter()
    response = api.post(EVENTS, body, format="json")
    elapsed = time.perf_counter() - started

    assert response.status_code == 400
    assert list(response.json()) == ["properties"]
    (message,) = response.json()["properties"]["non_field_errors"]
    assert "Version 1 of the schema of level_up breaks the rules" in message
    assert SECRET not in response.content.decode()
    assert remote.paths == []
    assert elapsed < 1.0
    assert not Event.objects.exists()


# 2. An invalid event costs little


ITEM_IDS = [f"item_{i:05d}" for i in range(5_000)]
INVENTORY = {
    "type": "object",
    "properties": {"items": {"type": "array", "items": {"enum": ITEM_IDS}}},
}


def test_an_event_breaking_a_big_enum_6000_times_gets_at_most_20_short_errors_in_little_memory(api, game):
    custom.register_schema(game=game, event_type="level_up", schema=INVENTORY)
    body = level_up({"items": list(range(6_000))})  # no item id: 6,000 errors
    assert 25_000 < len(json.dumps(body, separators=(",", ":"))) < 32 * 1024  # just under the event size limit

    tracemalloc.start()
    try:
        started = time.perf_counter()
        response = api.post(EVENTS, body, format="json")
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert response.status_code == 400
    errors = response.json()["properties"]["items"]
    messages = [message for item in errors.values() for message in item]
    assert 1 <= len(messages) <= custom.MAX_ERRORS
    assert all(len(message) <= custom.MAX_MESSAGE_CHARS for message in messages)
    assert next(iter(errors)) == "0"
    assert messages[0].startswith('0 is not one of "item_00000"')
    assert peak < 50 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"
    assert elapsed < 2.0  # 6 s before; about 0.05 s now (bench/schema_check.py --worst-case)


def test_the_errors_of_one_event_are_bounded_whatever_the_schema_breaks():
    schema = {"type": "object", "additionalProperties": {"type": "integer"}, "required": ["level", "hero"]}
    validator = custom.compile_schema(schema)
    properties = {f"p{i}": "x" * 5_000 for i in range(200)}

    errors = custom.CompiledSchema(version=1, validator=validator).errors(properties)

    def messages(node):
        if isinstance(node, dict):
            return [message for child in node.values() for message in messages(child)]
        return list(node)

    assert 1 <= len(messages(errors)) <= custom.MAX_ERRORS
    assert all(len(message) <= custom.MAX_MESSAGE_CHARS for message in messages(errors))
    assert errors["level"] == ['"level" is a required property']  # still named by path in the cheap branch


def test_a_few_errors_keep_their_detailed_messages(game):
    schema = {"properties": {"a": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}}
    validator = custom.compile_schema(schema)

    errors = custom.CompiledSchema(version=1, validator=validator).errors({"a": []})

    assert errors == {"a": ["[] is not valid under any of the schemas listed in the 'anyOf' keyword"]}


# 3. Patterns are matched in linear time


@pytest.mark.parametrize(
    "schema",
    [
        {"properties": {"name": {"type": "string", "pattern": "(?<=a+)b"}}},
        {"properties": {"name": {"type": "string", "pattern": "(?=a)a"}}},
        {"properties": {"name": {"type": "string", "pattern": "(a)\\1"}}},
        {"patternProperties": {"(?<!x)y": {"type": "string"}}},
    ],
    ids=["look-behind", "look-ahead", "backreference", "pattern-properties"],
)
def test_patterns_with_look_around_or_backreferences_are_refused_with_the_reason(game, schema, tmp_path):
    with pytest.raises(custom.InvalidSchemaError, match="look-around") as refused:
        custom.register_schema(game=game, event_type="level_up", schema=schema)
    assert "linear time" in str(refused.value)

    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    with pytest.raises(CommandError, match="look-around") as command:
        run_command(game.slug, "level_up", str(path))
    assert command.value.returncode == 1
    assert not EventSchema.objects.exists()


def test_ordinary_patterns_still_check_events_in_linear_time(api, game):
    schema = {"properties": {"name": {"type": "string", "pattern": "^(a+)+b$"}}}
    custom.register_schema(game=game, event_type="level_up", schema=schema)

    started = time.perf_counter()
    response = api.post(EVENTS, level_up({"name": "a" * 30_000 + "c"}), format="json")

    assert time.perf_counter() - started < 1.0
    assert response.status_code == 400
    assert list(response.json()["properties"]) == ["name"]
    assert api.post(EVENTS, level_up({"name": "aab"}), format="json").status_code == 202


# 4. Text PostgreSQL cannot store


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"type": "object", "description": "a\\u0000b"}', "NUL character"),
        ('{"type": "object", "properties": {"a\\u0000": {}}}', "NUL character"),
        ('{"enum": ["\\ud800"]}', "lone surrogate"),
    ],
)
def test_nul_characters_and_lone_surrogates_are_refused_by_the_command_with_status_1(game, tmp_path, text, reason):
    path = tmp_path / "schema.json"
    path.write_text(text)

    with pytest.raises(CommandError, match=reason) as refused:
        run_command(game.slug, "level_up", str(path))

    assert refused.value.returncode == 1
    assert not EventSchema.objects.exists()
