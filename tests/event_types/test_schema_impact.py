"""A new schema version's impact: how many of the type's recent events it would reject, shown before it is saved."""

import json
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from events_app.api.keys import issue_api_key
from events_app.event_types import custom, impact
from events_app.ingest.service import ingest_events
from events_app.models import ApiKey, EventSchema, Game

pytestmark = pytest.mark.django_db

V1 = {"type": "object", "properties": {"level": {"type": "integer", "minimum": 1}}, "required": ["level"]}
# Stricter: a `world` that builds written for version 1 never send, and levels up to 10.
V2 = {
    "type": "object",
    "properties": {"level": {"type": "integer", "minimum": 1, "maximum": 10}, "world": {"type": "string"}},
    "required": ["level", "world"],
}


@pytest.fixture
def game(game_key) -> Game:
    game = game_key[0].game
    custom.register_schema(game=game, event_type="level_up", schema=V1)
    return game


def send(api_key: ApiKey, *properties: dict, event_type: str = "level_up", days_ago: float = 0) -> list[str]:
    """Store events of `event_type` with these properties, received `days_ago`; return their event ids."""
    received_at = timezone.now() - timedelta(days=days_ago)
    raw = [
        {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "player_id": "player-1",
            "occurred_at": received_at.isoformat(),
            "properties": props,
        }
        for props in properties
    ]
    outcome = ingest_events(api_key=api_key, raw_events=raw, received_at=received_at)
    assert outcome.rejected == 0, outcome.results
    return [event["event_id"] for event in raw]


def schema_file(tmp_path, schema: object) -> str:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    return str(path)


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("event_schema", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_report_counts_the_recent_events_a_stricter_version_would_reject_with_their_reasons(game, game_key):
    send(game_key[0], {"level": 2, "world": "w1"}, {"level": 3})
    (newest,) = send(game_key[0], {"level": 40})

    report = impact.rejection_impact(game=game, event_type="level_up", schema=V2)

    assert (report.checked, report.rejected, report.sampled) == (3, 2, False)
    assert report.examples[0].event_id == newest  # newest first
    assert set(report.examples[0].reasons) == {
        "properties.level: 40 is greater than the maximum of 10",
        'properties.world: "world" is a required property',
    }
    assert report.summary("level_up") == (
        "Checked all 3 level_up events of the last 7 days: 2 would now be rejected (66.7%)."
    )


def test_the_report_leaves_out_older_events_other_types_and_other_games(game, game_key):
    send(game_key[0], {"level": 3}, days_ago=8)
    custom.register_schema(game=game, event_type="boss_killed", schema={"type": "object"})
    send(game_key[0], {"level": 3}, event_type="boss_killed")
    other_key, _ = issue_api_key(game_slug="moon-miners")
    custom.register_schema(game=other_key.game, event_type="level_up", schema=V1)
    send(other_key, {"level": 3})

    report = impact.rejection_impact(game=game, event_type="level_up", schema=V2)

    assert (report.checked, report.rejected) == (0, 0)
    assert report.summary("level_up") == "No level_up events in the last 7 days to check the new version against."


def test_the_report_checks_a_bounded_sample_and_says_so(game, game_key, monkeypatch):
    monkeypatch.setattr(impact, "SAMPLE_LIMIT", 2)
    send(game_key[0], *({"level": n} for n in range(1, 6)))

    report = impact.rejection_impact(game=game, event_type="level_up", schema=V2)

    assert (report.checked, report.rejected, report.sampled) == (2, 2, True)
    assert report.summary("level_up").startswith("Checked the latest 2 level_up events of the last 7 days:")


def test_the_report_looks_no_further_back_than_the_games_latest_events(game, game_key, monkeypatch):
    """A rare type behind many events of others costs a bounded walk: it reads as not checked, and sampled."""
    monkeypatch.setattr(impact, "SCAN_LIMIT", 3)
    send(game_key[0], {"level": 3})
    custom.register_schema(game=game, event_type="boss_killed", schema={"type": "object"})
    send(game_key[0], *({} for _ in range(3)), event_type="boss_killed")

    report = impact.rejection_impact(game=game, event_type="level_up", schema=V2)

    assert (report.checked, report.sampled) == (0, True)


def test_the_report_refuses_an_invalid_schema(game):
    with pytest.raises(custom.InvalidSchemaError):
        impact.rejection_impact(game=game, event_type="level_up", schema={"$ref": "http://127.0.0.1:1/x.json"})


# The command


def test_the_command_prints_the_report_and_registers_nothing_without_yes(game, game_key, tmp_path):
    send(game_key[0], {"level": 3})
    err = StringIO()

    with pytest.raises(CommandError, match="Not registered: it would reject 1 of the 1 recent level_up events"):
        call_command("event_schema", game.slug, "level_up", schema_file(tmp_path, V2), stdout=StringIO(), stderr=err)

    assert "Checked all 1 level_up events of the last 7 days: 1 would now be rejected" in err.getvalue()
    assert 'properties.world: "world" is a required property' in err.getvalue()
    assert list(EventSchema.objects.values_list("version", flat=True)) == [1]


def test_the_command_registers_with_yes_after_printing_the_report(game, game_key, tmp_path):
    send(game_key[0], {"level": 3})

    out, err = run(game.slug, "level_up", schema_file(tmp_path, V2), "--yes")

    assert out.splitlines()[-1] == "2"
    assert "1 would now be rejected" in err
    assert EventSchema.objects.get(version=2).schema == V2


def test_the_command_registers_at_once_when_nothing_would_be_rejected(game, game_key, tmp_path):
    send(game_key[0], {"level": 3, "world": "w1"})

    out, err = run(game.slug, "level_up", schema_file(tmp_path, V2))

    assert out.splitlines()[-1] == "2"
    assert "none would be rejected" in err


def test_the_command_never_asks_when_the_schema_comes_from_stdin(game, game_key, monkeypatch):
    """`-` reads the schema from standard input, so there is no one to answer: the answer is no."""
    send(game_key[0], {"level": 3})
    monkeypatch.setattr("sys.stdin", StringIO(json.dumps(V2)))
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked"))

    with pytest.raises(CommandError, match="--yes"):
        run(game.slug, "level_up", "-")
    assert not EventSchema.objects.filter(version=2).exists()


def test_the_command_escapes_control_characters_in_the_names_the_events_chose(game, game_key, tmp_path):
    send(game_key[0], {"level": 3, "world": "w1", "k\x1b[2J\nforged line": "text"})
    strict = {**V2, "additionalProperties": {"type": "integer"}}

    _, err = run(game.slug, "level_up", schema_file(tmp_path, strict), "--yes")

    assert "properties.k\\x1b[2J\\x0aforged line: " in err
    assert "\x1b" not in err
