"""What a custom event's JSON Schema check costs per event, in isolation and inside the serializer, beside an install.

Usage: .venv/bin/python bench/schema_check.py [--events 20000] [--repeat 5]

In one process, on a fresh SQLite file: registers bench/level_up.schema.json (10
properties) for a game, then times, per event (best of --repeat runs):
- the schema check alone (the compiled jsonschema-rs validator via CompiledSchema.errors),
- the whole EventSerializer on that custom event, the cached schema lookup included,
- the whole EventSerializer on an install and on a purchase (today's types, the baseline).
"""

import argparse
import json
import os
import sys
import tempfile
import time
import timeit
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(database: Path) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="tracking_project.settings",
        DJANGO_DEBUG="1",
        DATABASE_URL=f"sqlite:///{database}",
        EVENTS_LOG_LEVEL="WARNING",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def per_event_us(function, *, events: int, repeat: int) -> float:
    return min(timeit.repeat(function, number=events, repeat=repeat)) / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    setup_django(Path(tempfile.mkdtemp(prefix="bench-schema-")) / "db.sqlite3")

    from events_app.event_types import custom
    from events_app.ingest.service import _event_serializer
    from events_app.models import Game

    game = Game.objects.create(slug="bench-game")
    schema = json.loads((ROOT / "bench" / "level_up.schema.json").read_text())
    custom.register_schema(game=game, event_type="level_up", schema=schema)
    compiled = custom.current_schema(game_id=game.pk, event_type="level_up")
    now = datetime.now(UTC)
    properties = {
        "level": 12,
        "hero": "ayla",
        "class": "mage",
        "xp": 48210,
        "gold": 1200,
        "zone": "frost_peaks",
        "party_size": 3,
        "hardcore": False,
        "duration_s": 312.5,
        "difficulty": "normal",
    }
    common = {"player_id": "player-1", "occurred_at": now.isoformat(), "platform": "android", "session_id": "s-1"}
    custom = {"event_id": str(uuid.uuid4()), "event_type": "level_up", "properties": properties, **common}
    install = {
        "event_id": str(uuid.uuid4()),
        "event_type": "install",
        **common,
        "properties": {
            "store": "app_store",
            "campaign": "summer",
            "country": "FR",
            "device_model": "iPhone15,2",
            "os_version": "18.1",
        },
    }
    purchase = {
        "event_id": str(uuid.uuid4()),
        "event_type": "purchase",
        **common,
        "properties": {
            "transaction_id": "GPA.1",
            "product_id": "gem_pack_small",
            "price": "4.99",
            "currency": "EUR",
            "store": "google_play",
        },
    }
    serializer = _event_serializer({"received_at": now, "batch_sent_at": None, "game": game})
    assert compiled.errors(properties) is None
    assert serializer.run_validation(custom)["event_schema_version"] == 1

    def validate(event: dict):
        # The serializer fills properties in place; give it a fresh copy as a request would.
        return lambda: serializer.run_validation({**event, "properties": dict(event["properties"])})

    started = time.perf_counter()
    figures = {
        "schema check alone (10 properties)": per_event_us(
            lambda: compiled.errors(properties), events=args.events, repeat=args.repeat
        ),
        "serializer, custom level_up": per_event_us(validate(custom), events=args.events, repeat=args.repeat),
        "serializer, install (baseline)": per_event_us(validate(install), events=args.events, repeat=args.repeat),
        "serializer, purchase (baseline)": per_event_us(validate(purchase), events=args.events, repeat=args.repeat),
    }
    print(f"{args.events:,} events per run, best of {args.repeat} ({time.perf_counter() - started:.0f} s in all)")
    for name, microseconds in figures.items():
        print(f"{name:<36} {microseconds:7.1f} us per event")


if __name__ == "__main__":
    main()
