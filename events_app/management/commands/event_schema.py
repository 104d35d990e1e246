"""Register a custom event type's JSON Schema for a game, list the registered types, or set the game's policy."""

import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from events_app.event_types import custom
from events_app.models import Game, UnknownEventPolicy


class Command(BaseCommand):
    help = (
        "event_schema GAME EVENT_TYPE FILE registers FILE (a JSON Schema, draft 2020-12, for the events' "
        "properties) as the next version of that custom type and prints the version on the last line; "
        "--list prints each registered type with its latest version; --unknown-events sets what happens to "
        "custom types with no schema."
    )

    def add_arguments(self, parser):
        parser.add_argument("game_slug")
        parser.add_argument("event_type", nargs="?")
        parser.add_argument("file", nargs="?", help="The schema file ('-' reads standard input).")
        parser.add_argument("--list", action="store_true", help="List the game's custom types and latest versions.")
        parser.add_argument(
            "--unknown-events",
            choices=UnknownEventPolicy.values,
            help="reject (default) or accept events of custom types with no registered schema.",
        )

    def handle(self, *args, game_slug, event_type, file, list: bool, unknown_events, **options):
        try:
            game = Game.objects.get(slug=game_slug)
        except Game.DoesNotExist:
            raise CommandError(f"No game {game_slug!r} (manage.py create_api_key {game_slug} creates it).") from None
        if unknown_events:
            game.unknown_events = unknown_events
            game.save(update_fields=["unknown_events"])
            self.stdout.write(f"{game.slug}: custom types without a schema are now {unknown_events}ed")
        elif list:
            for name, version in custom.registered_types(game=game):
                self.stdout.write(f"{name}\t{version}")
        elif event_type and file:
            version = self._register(game=game, event_type=event_type, file=file)
            self.stderr.write(f"Registered {event_type} version {version} for {game.slug}.")
            self.stdout.write(str(version))
        else:
            raise CommandError("Give EVENT_TYPE and FILE, or --list, or --unknown-events accept|reject.")

    def _register(self, *, game: Game, event_type: str, file: str) -> int:
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        try:
            schema = json.loads(text)
        except ValueError as exc:
            raise CommandError(f"{file} is not JSON: {exc}") from exc
        try:
            return custom.register_schema(game=game, event_type=event_type, schema=schema).version
        except custom.InvalidSchemaError as exc:
            raise CommandError(str(exc)) from exc
