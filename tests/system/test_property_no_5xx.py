"""Property tests over raw request bodies: no body or event, however hostile, gets a 5xx on any ingestion endpoint.

Bodies are rendered to bytes here rather than by a JSON library, so they can hold
what no encoder writes: invalid UTF-8, lone surrogates as `\\ud800` escapes, numbers
beyond a double or a 64-bit integer, `-0`, repeated keys, nesting thousands deep,
NUL in keys and values at any depth, gzip. Whatever arrives, the answer is below
500, and when it is a success the rows stored are exactly the events it accepted.
Runs on both databases (scripts/test.sh runs the suite on SQLite, then PostgreSQL).
"""

import gzip
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from events_app.event_types.custom import InvalidSchemaError, clear_cache, register_schema
from events_app.event_types.fields import NUL_MESSAGE
from events_app.ingest.serializers import EventSerializer
from events_app.models import Event, ExchangeRate, RejectedEvent, UnknownEventPolicy
from events_app.segment import views as segment_views
from sdk.contract import BUILTIN_EVENT_TYPES, PLATFORMS

pytestmark = pytest.mark.django_db

# max_examples comes from the profile (tests/conftest.py): 150, deterministic in CI.
# deadline off: the first example pays for the database connection and the caches.
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Every general category, including the ones st.characters leaves out unless asked:
# Cs (surrogates), Co (private use), Cn (unassigned).
CATEGORIES = (
    "Lu",
    "Ll",
    "Lt",
    "Lm",
    "Lo",
    "Mn",
    "Mc",
    "Me",
    "Nd",
    "Nl",
    "No",
    "Pc",
    "Pd",
    "Ps",
    "Pe",
    "Pi",
    "Pf",
    "Po",
    "Sm",
    "Sc",
    "Sk",
    "So",
    "Zs",
    "Zl",
    "Zp",
    "Cc",
    "Cf",
    "Cs",
    "Co",
    "Cn",
)
EDGE_CHARACTERS = [
    "\x00",
    "\ud800",
    "\udbff",
    "\udc00",
    "\udfff",
    "\ufeff",
    "\ufffe",
    "\uffff",
    "\ue000",
    "\U0010ffff",
    "\u2028",
    "\u0085",
    "\\",
    '"',
    "a",
]

texts = st.text(st.characters(categories=CATEGORIES), max_size=12) | st.text(
    st.sampled_from(EDGE_CHARACTERS), max_size=6
)


@dataclass(frozen=True)
class Raw:
    """JSON text written into the body as it is: numbers no encoder writes, nesting deeper than a parser recurses."""

    text: str


@dataclass(frozen=True)
class Pairs:
    """A JSON object written pair by pair, so a key may repeat."""

    pairs: tuple


INT64 = 2**63
raw_numbers = st.sampled_from(
    [
        "1e400",
        "-1e400",
        "1E+308",
        "1e-400",
        "-0",
        "-0.0",
        "0e0",
        "-0e-0",
        "4.9e-324",
        "1" * 400,
        "123456789012345678901234567890.5",
        str(INT64),
        str(-INT64 - 1),
        str(2**64),
        str(2**64 - 1),
        "9" * 20,
    ]
).map(Raw)
deep = st.integers(min_value=1, max_value=3000).flatmap(
    lambda depth: st.sampled_from(
        [Raw("[" * depth + "]" * depth), Raw('{"a":' * depth + "0" + "}" * depth), Raw("[" * depth)]
    )
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([INT64, -INT64 - 1, 2**64, 10**30, -(10**30)])
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
    | raw_numbers
)
hostile_values = st.recursive(
    scalars | deep,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(texts, children, max_size=3)
        | st.lists(st.tuples(texts, children), min_size=2, max_size=3).map(
            lambda pairs: Pairs((*pairs, pairs[0]))  # the first key again
        )
    ),
    max_leaves=8,
)


def render(value, *, ascii_only: bool) -> str:
    """Write `value` as JSON text; lone surrogates stay in it (as escapes, or raw when not `ascii_only`)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Pairs | dict):
        pairs = value.pairs if isinstance(value, Pairs) else value.items()
        return (
            "{"
            + ",".join(f"{render(k, ascii_only=ascii_only)}:{render(v, ascii_only=ascii_only)}" for k, v in pairs)
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ",".join(render(item, ascii_only=ascii_only) for item in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


@st.composite
def bodies(draw, payload) -> tuple[bytes, dict]:
    """Return (body bytes, extra request headers): `payload` rendered, or bytes that are no JSON at all."""
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        body = draw(
            st.binary(max_size=64)
            | st.sampled_from([b"\xff\xfe", b'{"a":"\xc3\x28"}', b'"\xed\xa0\x80"', b"\x00", b"", b'{"a":1'])
        )
    else:
        text = render(draw(payload), ascii_only=draw(st.booleans()))
        # Not ascii_only, a lone surrogate is written as its three bytes: invalid UTF-8.
        body = text.encode("utf-8", "surrogatepass")
    headers = {}
    if draw(st.integers(min_value=0, max_value=4)) == 0:
        body = gzip.compress(body, mtime=0)
        headers["HTTP_CONTENT_ENCODING"] = "gzip"
    return body, headers


def nest_somewhere(draw, target: dict) -> None:
    """Put a hostile key and value into `target`, at a depth of 0 to 3 objects or lists."""
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        child: dict = {}
        if draw(st.booleans()):
            target[draw(texts)] = child
        else:
            target[draw(texts)] = [child]
        target = child
    target[draw(texts)] = draw(hostile_values)


def moment(draw) -> str:
    base = datetime.now(UTC) - timedelta(days=draw(st.integers(min_value=0, max_value=30)))
    return base.isoformat()


EVENT_FIELDS = [
    "event_id",
    "event_type",
    "player_id",
    "occurred_at",
    "sent_at",
    "platform",
    "app_version",
    "session_id",
    "properties",
    "context",
]


@st.composite
def native_events(draw) -> object:
    """A valid event of any type, then some fields replaced or injected with hostile values."""
    event_type = draw(st.sampled_from([*BUILTIN_EVENT_TYPES, "level_up"]))
    event = {
        "event_id": str(draw(st.uuids())),
        "event_type": event_type,
        "player_id": "player-1",
        "occurred_at": moment(draw),
        "platform": draw(st.sampled_from(PLATFORMS)),
        "properties": {
            "transaction_id": str(draw(st.uuids())),
            "product_id": "gems",
            "price": draw(st.sampled_from(["4.99", "999999999999.999999", "999999999999999999", "0.01", 4.99, 1e300])),
            "currency": draw(st.sampled_from(["EUR", "USD", "JPY", "KWD"])),
            "quantity": draw(st.sampled_from([1, 1000, 10**6, 10**6 + 1, INT64 - 1])),
            "store": "app_store",
            "duration_ms": 1000,
            "amount": "1.5",
            "revenue": "0.001",
        },
        "context": {"device": "phone"},
    }
    for field_name in draw(st.lists(st.sampled_from(EVENT_FIELDS), max_size=3, unique=True)):
        event[field_name] = draw(hostile_values)
    for field_name in ("properties", "context"):
        if isinstance(event.get(field_name), dict) and draw(st.booleans()):
            nest_somewhere(draw, event[field_name])
    return event


@st.composite
def segment_messages(draw) -> object:
    """A valid Segment track (an install or an order), then some fields replaced or injected with hostile values."""
    message = {
        "type": "track",
        "event": draw(st.sampled_from(["Application Installed", "Order Completed", "level_up"])),
        "userId": "player-1",
        "anonymousId": "anon-1",
        "messageId": str(draw(st.uuids())),
        "timestamp": moment(draw),
        "properties": {"order_id": str(draw(st.uuids())), "revenue": 12.99, "currency": "EUR"},
        "context": {"os": {"name": "Android"}, "app": {"version": "3.1.0"}},
    }
    fields = [
        "type",
        "event",
        "userId",
        "anonymousId",
        "messageId",
        "timestamp",
        "sentAt",
        "properties",
        "context",
        "traits",
        "integrations",
    ]
    for field_name in draw(st.lists(st.sampled_from(fields), max_size=3, unique=True)):
        message[field_name] = draw(hostile_values)
    for field_name in ("properties", "context"):
        if isinstance(message.get(field_name), dict) and draw(st.booleans()):
            nest_somewhere(draw, message[field_name])
    return message


native_event_payloads = native_events() | hostile_values
native_batch_payloads = (
    st.fixed_dictionaries(
        {"events": st.lists(native_events() | hostile_values, min_size=1, max_size=6)},
        optional={"sent_at": st.sampled_from([datetime.now(UTC).isoformat()]) | hostile_values},
    )
    | hostile_values
)
segment_call_payloads = segment_messages() | hostile_values
segment_batch_payloads = (
    st.fixed_dictionaries(
        {"batch": st.lists(segment_messages() | hostile_values, min_size=0, max_size=6)},
        optional={"sentAt": hostile_values, "context": st.just({"library": {"name": "fuzz"}}) | hostile_values},
    )
    | hostile_values
)


@pytest.fixture
def client(game_key, settings) -> Client:
    # Custom types accepted unchecked, so hostile values in a custom event reach the insert.
    game = game_key[0].game
    game.unknown_events = UnknownEventPolicy.ACCEPT
    game.save()
    # Rates for every day the events fall on, so purchases are converted as in production:
    # a KWD is worth about three euros, the largest amount the contract takes is not.
    settings.EVENTS_BASE_CURRENCY = "EUR"
    today = datetime.now(UTC).date()
    ExchangeRate.objects.bulk_create(
        ExchangeRate(date=today - timedelta(days=days), currency=code, base_currency="EUR", rate=Decimal(rate))
        for days in range(32)
        for code, rate in (("USD", "1.165"), ("JPY", "181.2"), ("KWD", "0.3571"))
    )
    return Client(HTTP_AUTHORIZATION=f"Bearer {game_key[1]}")


def stored_ids() -> set[str]:
    return {str(event_id) for event_id in Event.objects.values_list("event_id", flat=True)}


def post(client: Client, path: str, body: bytes, headers: dict):
    response = client.post(path, body, content_type="application/json", **headers)
    if currently_in_test_context():
        event(f"answered {response.status_code}")  # --hypothesis-show-statistics: how many reach the insert
    return response


@FUZZ
@given(request=bodies(native_event_payloads))
def test_any_body_sent_to_events_is_answered_below_500_and_stores_only_what_it_accepted(client, request):
    before = stored_ids()

    response = post(client, "/v1/events", *request)

    assert response.status_code < 500, response.content
    new = stored_ids() - before
    if response.status_code == 202 and response.json()["status"] == "accepted":
        assert new == {response.json()["event_id"]}
    else:
        assert new == set()


@FUZZ
@given(request=bodies(native_batch_payloads))
def test_any_body_sent_to_events_batch_is_answered_below_500_and_stores_exactly_the_accepted(client, request):
    before = stored_ids()

    response = post(client, "/v1/events/batch", *request)

    assert response.status_code < 500, response.content
    new = stored_ids() - before
    if response.status_code == 200:
        answer = response.json()
        accepted = {result["event_id"] for result in answer["results"] if result["status"] == "accepted"}
        assert new == accepted
        assert answer["accepted"] + answer["duplicates"] + answer["rejected"] + answer["suppressed"] == len(
            answer["results"]
        )
    else:
        assert new == set()


def spy_on(name: str):
    """Patch the Segment view's service call with a spy that keeps what it returned."""
    real = getattr(segment_views, name)
    outcomes = []

    def spy(**kwargs):
        outcomes.append(real(**kwargs))
        return outcomes[-1]

    return mock.patch.object(segment_views, name, spy), outcomes


@FUZZ
@given(request=bodies(segment_batch_payloads))
def test_any_body_sent_to_segment_batch_is_answered_below_500_and_stores_exactly_the_accepted(client, request):
    before = stored_ids()
    patch, outcomes = spy_on("ingest_segment_calls")

    with patch:
        response = post(client, "/v1/batch", *request)

    assert response.status_code < 500, response.content
    new = stored_ids() - before
    if response.status_code == 200:
        (outcome,) = outcomes
        assert len(new) == outcome.accepted
    else:
        assert new == set()


@FUZZ
@given(request=bodies(segment_call_payloads))
def test_any_body_sent_to_segment_track_is_answered_below_500_and_stores_only_what_it_accepted(client, request):
    before = stored_ids()
    patch, outcomes = spy_on("ingest_segment_call")

    with patch:
        response = post(client, "/v1/track", *request)

    assert response.status_code < 500, response.content
    new = stored_ids() - before
    if response.status_code == 200:
        (outcome,) = outcomes
        assert len(new) == outcome.accepted <= 1
    else:
        assert new == set()


def test_the_bodies_reach_the_insert(client):
    """Guards the generators: some hostile events get all the way to a stored row on this database."""
    body = render(
        {
            "event_type": "level_up",
            "player_id": "p",
            "occurred_at": datetime.now(UTC).isoformat(),
            "properties": {"big": Raw(str(2**64 - 1)), "neg_zero": Raw("-0"), "pua": "\ue000\U0010ffff"},
        },
        ascii_only=False,
    ).encode()

    response = post(client, "/v1/events", body, {})

    assert response.status_code == 202, response.content
    assert Event.objects.get().payload["properties"]["pua"] == "\ue000\U0010ffff"


def test_an_event_the_database_cannot_hold_is_rejected_alone_with_a_400_never_a_500(client, monkeypatch):
    """Should validation ever miss what a column cannot hold, the insert refuses that event alone, by name."""
    monkeypatch.setattr(EventSerializer, "_name_nul_characters", lambda self, data, errors: None)
    good = {"event_type": "install", "player_id": "p", "occurred_at": datetime.now(UTC).isoformat()}
    bad = {**good, "properties": {"no\x00te": "x"}}

    single = client.post("/v1/events", bad, content_type="application/json")
    batch = client.post("/v1/events/batch", {"events": [bad, good]}, content_type="application/json")

    assert single.status_code == 400, single.content
    assert single.json() == {"properties": {"no\x00te": [NUL_MESSAGE]}}
    answer = batch.json()
    assert (batch.status_code, answer["accepted"], answer["rejected"]) == (200, 1, 1)
    assert answer["results"][0] == {"index": 0, "status": "rejected", "errors": single.json()}
    assert stored_ids() == {answer["results"][1]["event_id"]}
    # Kept for operators too, the NUL written out: PostgreSQL's jsonb cannot hold one.
    kept = list(RejectedEvent.objects.values_list("errors", flat=True))
    assert kept == [{"properties": {"no\\u0000te": [NUL_MESSAGE]}}] * 2


# Custom schemas an operator might register, hostile or careless: patterns that backtrack
# or that the linear engine refuses, enums of thousands of values, both nested in arrays.
schema_patterns = st.sampled_from(
    ["(?<=a+)b", "(a+)+$", "^(a|aa)+$", "(a|a)*c", "\\p{L}+", "[", "a{2,1}", "(?P<n>a)(?P=n)", "^.*$", "\\d{3}"]
) | st.text(max_size=12)
schema_enums = st.lists(st.text(max_size=6) | st.integers(), unique=True, max_size=3000)


@st.composite
def hostile_schemas(draw) -> dict:
    item = {"enum": draw(schema_enums)} if draw(st.booleans()) else {"type": "string", "pattern": draw(schema_patterns)}
    return {
        "type": "object",
        "properties": {
            "text": {"type": "string", "pattern": draw(schema_patterns)},
            "items": {"type": "array", "items": item, "maxItems": draw(st.integers(0, 10_000))},
        },
    }


hostile_properties = st.fixed_dictionaries(
    {},
    optional={
        "text": st.sampled_from(["a" * 5000 + "!", "b" * 30_000, ""]) | st.text(max_size=40) | hostile_values,
        "items": st.lists(st.sampled_from(["a" * 40, "x", 7, None]) | st.text(max_size=8), max_size=3000)
        | hostile_values,
    },
)


@FUZZ
@given(schema=hostile_schemas(), properties=hostile_properties)
def test_custom_schemas_with_hostile_patterns_and_enums_never_cost_a_500(client, game_key, schema, properties):
    """Registration refuses what it cannot run linearly; what it takes checks any event with a bounded answer."""
    try:
        register_schema(game=game_key[0].game, event_type="level_up", schema=schema)
    except InvalidSchemaError:
        event("schema refused")
        return
    event("schema registered")
    clear_cache()
    body = {
        "event_type": "level_up",
        "player_id": "p",
        "occurred_at": datetime.now(UTC).isoformat(),
        "properties": properties,
    }

    response = client.post("/v1/events", json.dumps(body, default=str), content_type="application/json")

    assert response.status_code < 500, response.content
    if response.status_code == 400 and "properties" in response.json().get("errors", {}):
        errors = response.json()["errors"]["properties"]
        assert len(json.dumps(errors)) < 20 * 1024  # at most 20 errors, each cut short
