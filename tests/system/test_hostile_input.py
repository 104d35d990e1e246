"""Hostile bytes in an event: refused with a 400 naming the place, never a 500, on SQLite and PostgreSQL alike.

Also hostile sizes: a single event's body is refused over 64 KiB before it is parsed,
and a repeated key costs no second full parse, however big the body.
"""

import gzip
import json
import types
import uuid

import orjson
import pytest

from events_app import conf
from events_app.api import parsers
from events_app.models import Event
from tests.support.events import now_rfc3339

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


# --- Body size and parse cost ------------------------------------------------------


def padded_install(size: int) -> bytes:
    """Return a valid install event as compact JSON of exactly `size` bytes."""
    event = install(properties={"note": ""})
    base = len(orjson.dumps(event))
    event["properties"]["note"] = "x" * (size - base)
    return orjson.dumps(event)


@pytest.fixture
def parsed_sizes(monkeypatch):
    """Record the size of every body the request parser hands to orjson."""
    sizes = []

    def loads(data):
        sizes.append(len(data))
        return orjson.loads(data)

    spy = types.SimpleNamespace(
        loads=loads, dumps=orjson.dumps, JSONDecodeError=orjson.JSONDecodeError, JSONEncodeError=orjson.JSONEncodeError
    )
    monkeypatch.setattr(parsers, "orjson", spy)
    return sizes


@pytest.mark.parametrize(
    "headers",
    [{}, {"HTTP_CONTENT_ENCODING": "gzip"}, {"CONTENT_LENGTH": str(conf.MAX_EVENT_BODY_BYTES + 1)}],
    ids=["plain", "gzip", "declared-length"],
)
def test_a_single_event_body_over_64_kib_is_refused_413_naming_the_limit_unparsed(api, parsed_sizes, headers):
    body = padded_install(conf.MAX_EVENT_BODY_BYTES + 1)
    if headers.get("HTTP_CONTENT_ENCODING") == "gzip":
        body = gzip.compress(body)  # a few hundred bytes on the wire
    elif "CONTENT_LENGTH" in headers:
        body = padded_install(1000)  # small, but announced as too big

    response = api.generic("POST", "/v1/events", body, content_type="application/json", **headers)

    assert response.status_code == 413
    assert "64 KiB (65536 bytes)" in response.json()["detail"]
    assert parsed_sizes == []
    assert not Event.objects.exists()


def test_a_single_event_body_at_the_limit_is_read_and_its_event_judged_by_its_own_32_kib_limit(api):
    pretty = json.dumps(json.loads(padded_install(conf.MAX_EVENT_BYTES)), indent=4, ensure_ascii=True).encode()
    assert conf.MAX_EVENT_BYTES < len(pretty) <= conf.MAX_EVENT_BODY_BYTES

    accepted = api.generic("POST", "/v1/events", pretty, content_type="application/json")
    too_big = api.generic(
        "POST", "/v1/events", padded_install(conf.MAX_EVENT_BODY_BYTES), content_type="application/json"
    )

    assert accepted.status_code == 202  # the spaces a client's encoder adds do not count
    assert too_big.status_code == 400
    assert "non_field_errors" in too_big.json()


def test_the_batch_endpoint_keeps_its_1_mib_limit(api):
    events = [json.loads(padded_install(20_000)) for _ in range(40)]  # 800 KB
    body = orjson.dumps({"events": events})
    over = orjson.dumps({"events": events + events[:13]})
    assert len(body) < conf.MAX_BODY_BYTES < len(over)

    assert api.generic("POST", "/v1/events/batch", body, content_type="application/json").json()["accepted"] == 40
    refused = api.generic("POST", "/v1/events/batch", over, content_type="application/json")
    assert refused.status_code == 413
    assert "1 MiB (1048576 bytes)" in refused.json()["detail"]


@pytest.fixture
def stdlib_parsed(monkeypatch):
    """Record the length of every text the stdlib's duplicate-key parser reads."""
    lengths = []
    real_decode = parsers._duplicate_checker.decode

    def decode(text, *args, **kwargs):
        lengths.append(len(text))
        return real_decode(text, *args, **kwargs)

    monkeypatch.setattr(parsers._duplicate_checker, "decode", decode)
    return lengths


def test_a_repeated_key_deep_in_a_1_mib_batch_is_refused_without_a_second_full_parse(api, stdlib_parsed):
    objects = ",".join('{"k": 1}' for _ in range(100_000))  # the stdlib's hook runs once per object
    body = f'{{"events": [{objects}, {{"k": 1, "k": 2}}]}}'.encode()
    assert len(body) < conf.MAX_BODY_BYTES

    response = api.generic("POST", "/v1/events/batch", body, content_type="application/json")

    assert response.status_code == 400
    assert "duplicate key" in response.json()["detail"]
    assert max(stdlib_parsed) <= parsers.NAMING_PREFIX_BYTES


def test_a_repeated_key_near_the_start_is_named_and_clean_bodies_skip_the_stdlib_entirely(api, stdlib_parsed):
    first = install(properties={"price": "4.99"})
    text = json.dumps({"events": [first, install(), install()]})
    body = text.replace('"price": "4.99"', '"price": "4.99", "price": "0.01"', 1).encode()
    escaped = json.dumps({"events": [install(properties={"note": "a\\u003a and \\\\u003a"})]}).encode()

    refused = api.generic("POST", "/v1/events/batch", body, content_type="application/json")
    assert stdlib_parsed  # naming the key is the only use of the stdlib's parser
    stdlib_parsed.clear()
    accepted = api.generic("POST", "/v1/events/batch", escaped, content_type="application/json")

    assert refused.status_code == 400
    assert refused.json()["detail"] == 'Malformed JSON: duplicate key "price".'
    assert accepted.json()["accepted"] == 1
    assert stdlib_parsed == []
