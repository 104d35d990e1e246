"""The custom event schema pages: every version listed read-only, new versions registered from a pasted schema."""

import json

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.urls import reverse

from events_app.event_types import custom
from events_app.models import Event, EventSchema, Game
from tests.admin.helpers import LEVEL_UP_SCHEMA, READ_ONLY_PERMISSIONS, make_event, store
from tests.event_types.remote import SECRET, RecordingServer
from tests.support.users import make_user

SCHEMAS_URL = reverse("admin:events_app_eventschema_changelist")
REGISTER_URL = reverse("admin:events_app_eventschema_add")


def register_form(game: Game, event_type: str, schema: object | str) -> dict:
    text = schema if isinstance(schema, str) else json.dumps(schema)
    return {"game": game.pk, "event_type": event_type, "schema": text}


def test_schema_list_shows_every_version_per_game_and_marks_the_latest(operator, game_key, other_game_key):
    game, other = game_key[0].game, other_game_key[0].game
    for schema in ({"type": "object"}, LEVEL_UP_SCHEMA):
        custom.register_schema(game=game, event_type="level_up", schema=schema)
    custom.register_schema(game=other, event_type="level_up", schema={"type": "object"})

    everything = operator.get(SCHEMAS_URL)
    one_game = operator.get(SCHEMAS_URL, {"game__id__exact": game.pk})

    rows = [(row.game.slug, row.event_type, row.version) for row in everything.context["cl"].result_list]
    assert rows == [("moon-miners", "level_up", 1), ("space-raiders", "level_up", 2), ("space-raiders", "level_up", 1)]
    assert [row.version for row in one_game.context["cl"].result_list] == [2, 1]
    html = one_game.content.decode()
    assert html.count('<span class="state-badge schema-latest">latest</span>') == 1
    assert 'id="register-schema-link"' not in html  # a reader may not register


def test_schema_page_shows_the_schema_pretty_printed_and_cannot_be_edited(operator, game_key):
    game = game_key[0].game
    first = custom.register_schema(game=game, event_type="level_up", schema=LEVEL_UP_SCHEMA)
    custom.register_schema(game=game, event_type="level_up", schema={"type": "object"})
    url = reverse("admin:events_app_eventschema_change", args=[first.pk])

    html = operator.get(url).content.decode()
    post = operator.post(url, {"schema": "{}"})

    assert '<pre class="json" id="schema-json">{\n  &quot;type&quot;: &quot;object&quot;,' in html
    assert "&quot;minimum&quot;: 1" in html
    assert "Superseded by version 2" in html
    assert 'name="_save"' not in html
    assert post.status_code == 403
    assert EventSchema.objects.get(pk=first.pk).schema == LEVEL_UP_SCHEMA
    assert operator.post(reverse("admin:events_app_eventschema_delete", args=[first.pk])).status_code == 403


def test_registering_a_schema_in_the_admin_adds_the_next_version_and_says_so(admin_client, admin_user, game_key):
    game = game_key[0].game
    first = custom.register_schema(game=game, event_type="level_up", schema={"type": "object"})

    response = admin_client.post(REGISTER_URL, register_form(game, "level_up", LEVEL_UP_SCHEMA), follow=True)

    latest = EventSchema.objects.get(game=game, event_type="level_up", version=2)
    assert latest.schema == LEVEL_UP_SCHEMA
    assert EventSchema.objects.get(pk=first.pk).schema == {"type": "object"}  # versions never change
    assert response.redirect_chain[-1][0] == reverse("admin:events_app_eventschema_change", args=[latest.pk])
    assert [str(m) for m in response.context["messages"]] == [
        "Registered level_up version 2 for space-raiders: new events of this type are checked against it within "
        "2 seconds on every server process. No level_up events in the last 7 days to check the new version against."
    ]
    assert "The latest version: new events of this type from this game are checked against it." in (
        response.content.decode()
    )
    entry = LogEntry.objects.get(user=admin_user, action_flag=ADDITION)
    assert (entry.object_id, entry.get_change_message()) == (str(latest.pk), "Registered version 2.")


def test_a_version_that_would_reject_recent_events_asks_for_confirmation_with_how_many_and_why(admin_client, game_key):
    game = game_key[0].game
    custom.register_schema(game=game, event_type="level_up", schema={"type": "object"})
    store(game_key[0], [make_event("level_up", {"level": 0}), make_event("level_up", {"level": 5})])

    response = admin_client.post(REGISTER_URL, register_form(game, "level_up", LEVEL_UP_SCHEMA))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Checked all 2 level_up events of the last 7 days: 1 would now be rejected (50.0%)." in html
    assert "properties.level: 0 is less than the minimum of 1" in html
    assert 'id="confirm-register"' in html
    assert list(EventSchema.objects.values_list("version", flat=True)) == [1]


def test_confirming_registers_the_version_and_says_what_it_rejects(admin_client, game_key):
    game = game_key[0].game
    custom.register_schema(game=game, event_type="level_up", schema={"type": "object"})
    store(game_key[0], [make_event("level_up", {"level": 0})])
    form = register_form(game, "level_up", LEVEL_UP_SCHEMA)

    response = admin_client.post(REGISTER_URL, {**form, "_confirmed": "1"}, follow=True)

    assert EventSchema.objects.get(version=2).schema == LEVEL_UP_SCHEMA
    (message,) = response.context["messages"]
    assert "Registered level_up version 2" in str(message)
    assert "1 would now be rejected" in str(message)
    assert message.level_tag == "warning"


def test_going_back_from_the_confirmation_shows_the_form_with_the_schema_as_typed(admin_client, game_key):
    game = game_key[0].game
    custom.register_schema(game=game, event_type="level_up", schema={"type": "object"})
    store(game_key[0], [make_event("level_up", {"level": 0})])
    typed = '{"type": "object", "properties": {"level": {"minimum": 1}}}'

    response = admin_client.post(REGISTER_URL, {**register_form(game, "level_up", typed), "_edit": "1"})

    assert 'id="register-schema"' in response.content.decode()
    assert response.context["form"]["schema"].value() == typed
    assert list(EventSchema.objects.values_list("version", flat=True)) == [1]


def test_a_schema_registered_in_the_admin_checks_the_games_next_events(admin_client, api, game_key):
    admin_client.post(REGISTER_URL, register_form(game_key[0].game, "level_up", LEVEL_UP_SCHEMA))

    valid = api.post("/v1/events", make_event("level_up", {"level": 3}), format="json")
    invalid = api.post("/v1/events", make_event("level_up", {"level": 0}), format="json")

    assert valid.status_code == 202
    assert invalid.status_code == 400
    assert "level" in invalid.json()["properties"]
    assert Event.objects.get(event_type="level_up").payload["event_schema_version"] == 1


@pytest.mark.parametrize(
    ("event_type", "schema", "field", "reason"),
    [
        ("level_up", '{"type": "object",', "schema", "Not JSON: "),
        ("level_up", {"type": "no-such-type"}, "schema", "Not a valid JSON Schema: "),
        ("level_up", {"minimum": "one"}, "schema", "Not a valid JSON Schema: "),
        ("level_up", '"object"', "schema", "A JSON Schema is an object (or true/false)."),
        ("purchase", {"type": "object"}, "event_type", "&#x27;purchase&#x27; is a built-in event type; its rules are"),
        ("Level Up", {"type": "object"}, "event_type", "&#x27;Level Up&#x27; is not a valid custom type name"),
    ],
)
def test_registering_an_invalid_schema_shows_the_reason_and_stores_nothing(
    admin_client, game_key, event_type, schema, field, reason
):
    response = admin_client.post(REGISTER_URL, register_form(game_key[0].game, event_type, schema))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Not registered: please correct the errors below." in html
    errors = html.split(f'class="form-row field-{field}"', 1)[1].split("</ul>", 1)[0]
    assert reason in errors
    assert not EventSchema.objects.exists()


def test_register_form_is_prefilled_with_the_latest_version_of_the_type(admin_client, game_key):
    game = game_key[0].game
    for schema in ({"type": "object"}, LEVEL_UP_SCHEMA):
        custom.register_schema(game=game, event_type="level_up", schema=schema)

    html = admin_client.get(REGISTER_URL, {"game": game.pk, "event_type": "level_up"}).content.decode()

    assert "Prefilled with version 2, the latest of level_up for space-raiders" in html
    assert "register it as version 3" in html
    assert "&quot;required&quot;: [\n    &quot;level&quot;\n  ]" in html
    assert 'value="level_up"' in html


def test_registering_a_schema_needs_the_add_permission(operator, client, game_key):
    form = register_form(game_key[0].game, "level_up", LEVEL_UP_SCHEMA)

    reader_get, reader_post = operator.get(REGISTER_URL), operator.post(REGISTER_URL, form)
    client.force_login(make_user("schema-author", [*READ_ONLY_PERMISSIONS, "add_eventschema"]))
    author_page = client.get(SCHEMAS_URL).content.decode()
    author_post = client.post(REGISTER_URL, form)

    assert (reader_get.status_code, reader_post.status_code) == (403, 403)
    assert 'id="register-schema-link"' in author_page
    assert author_post.status_code == 302
    assert list(EventSchema.objects.values_list("event_type", "version")) == [("level_up", 1)]


# -- hostile query strings ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["game=%C2%B2&event_type=level_up", "game={game}&event_type=level%00up"])
def test_the_register_form_ignores_a_query_string_that_names_no_game_or_type(admin_client, game_key, query):
    """A superscript two passes str.isdigit() but not int(); PostgreSQL refuses NUL: the form opens empty, no 500."""
    custom.register_schema(game=game_key[0].game, event_type="level_up", schema=LEVEL_UP_SCHEMA)

    response = admin_client.get(f"{REGISTER_URL}?{query.format(game=game_key[0].game_id)}")

    assert response.status_code == 200
    assert response.context["latest"] is None


# -- schemas that are not self-contained, patterns that backtrack, text PostgreSQL cannot store --------------------


@pytest.fixture
def remote():
    server = RecordingServer()
    yield server
    server.close()


def form_errors(response, field: str = "schema") -> str:
    html = response.content.decode()
    assert "Not registered: please correct the errors below." in html
    return html.split(f'class="form-row field-{field}"', 1)[1].split("</ul>", 1)[0]


def test_the_form_refuses_refs_to_a_url_or_a_file_and_fetches_nothing(admin_client, game_key, remote, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"SecretAccessKey": SECRET}))
    schemas = [
        {"$ref": f"{remote.url}/creds.json#/SecretAccessKey"},
        {"$ref": secret.as_uri()},
        {"properties": {"level": {"$ref": f"{secret.as_uri()}#/SecretAccessKey"}}},
    ]

    for schema in schemas:
        response = admin_client.post(REGISTER_URL, register_form(game_key[0].game, "level_up", schema))

        assert response.status_code == 200
        assert "points outside this schema" in form_errors(response)
        assert SECRET not in response.content.decode()
    assert remote.paths == []
    assert not EventSchema.objects.exists()


def test_the_form_refuses_a_schema_uri_other_than_draft_2020_12_and_fetches_nothing(admin_client, game_key, remote):
    schema = {"$schema": f"{remote.url}/meta.json", "type": "object"}

    response = admin_client.post(REGISTER_URL, register_form(game_key[0].game, "level_up", schema))

    assert "is not draft 2020-12" in form_errors(response)
    assert "https://json-schema.org/draft/2020-12/schema" in form_errors(response)
    assert remote.paths == []
    assert not EventSchema.objects.exists()


def test_the_form_refuses_a_look_behind_pattern_with_the_reason(admin_client, game_key):
    schema = {"properties": {"name": {"type": "string", "pattern": "(?<=a+)b"}}}

    response = admin_client.post(REGISTER_URL, register_form(game_key[0].game, "level_up", schema))

    assert "look-around" in form_errors(response)
    assert not EventSchema.objects.exists()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"type": "object", "description": "a\\u0000b"}', "A NUL character (\\u0000) at /description"),
        ('{"properties": {"a\\u0000": {}}}', "A NUL character (\\u0000) at /properties"),
        ('{"type": "object", "description": "a\x00b"}', "Null characters are not allowed."),
    ],
    ids=["escaped-value", "escaped-key", "raw"],
)
def test_the_form_refuses_a_nul_character_with_a_form_error(admin_client, game_key, text, reason):
    """PostgreSQL cannot store NUL in jsonb: it was a 500 there."""
    response = admin_client.post(REGISTER_URL, register_form(game_key[0].game, "level_up", text))

    assert response.status_code == 200
    assert reason in form_errors(response)
    assert not EventSchema.objects.exists()
