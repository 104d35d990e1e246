"""Register a custom event type's JSON Schema for a game, list the registered types, or set the game's policy."""

import json
import re
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from events_app.event_types import custom, impact
from events_app.models import Game, UnknownEventPolicy

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class Command(BaseCommand):
    help = (
        "event_schema GAME EVENT_TYPE FILE registers FILE (a JSON Schema, draft 2020-12, for the events' "
        "properties) as the next version of that custom type and prints the version on the last line. "
        "First it checks the type's recent events against it and says how many it would reject; if any, it "
        "registers only with --yes (or a yes at the prompt when run in a terminal). "
        "--list prints each registered type with its latest version; --unknown-events sets what happens to "
        "custom types with no schema."
    )

    def add_arguments(self, parser):
        parser.add_argument("game_slug")
        parser.add_argument("event_type", nargs="?")
        parser.add_argument("file", nargs="?", help="The schema file ('-' reads standard input).")
        parser.add_argument("--list", action="store_true", help="List the game's custom types and latest versions.")
        parser.add_argument(
            "--yes",
            action="store_true",
            help="Register even if the new version would reject some of the type's recent events.",
        )
        parser.add_argument(
            "--unknown-events",
            choices=UnknownEventPolicy.values,
            help="reject (default) or accept events of custom types with no registered schema.",
        )

    def handle(self, *args, game_slug, event_type, file, list: bool, unknown_events, yes: bool, **options):
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
            version = self._register(game=game, event_type=event_type, file=file, yes=yes)
            self.stderr.write(f"Registered {event_type} version {version} for {game.slug}.")
            self.stdout.write(str(version))
        else:
            raise CommandError("Give EVENT_TYPE and FILE, or --list, or --unknown-events accept|reject.")

    def _register(self, *, game: Game, event_type: str, file: str, yes: bool) -> int:
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from exc
        try:
            schema = json.loads(text)
        except ValueError as exc:
            raise CommandError(f"{file} is not JSON: {exc}") from exc
        try:
            custom.check_type_name(event_type)
            report = impact.rejection_impact(game=game, event_type=event_type, schema=schema)
        except custom.InvalidSchemaError as exc:
            raise CommandError(str(exc)) from exc
        self._report(report, event_type)
        if report.rejected and not yes and not self._confirmed(file):
            raise CommandError(
                f"Not registered: it would reject {report.rejected:,} of the {report.checked:,} recent {event_type} "
                "events checked. Run again with --yes to register it anyway."
            )
        try:
            return custom.register_schema(game=game, event_type=event_type, schema=schema).version
        except custom.InvalidSchemaError as exc:
            raise CommandError(str(exc)) from exc

    def _report(self, report: impact.Impact, event_type: str) -> None:
        """Write what the new version would reject to stderr: stdout's last line stays the version alone."""
        self.stderr.write(report.summary(event_type))
        for example in report.examples:
            self.stderr.write(f"  event {example.event_id} received {example.received_at:%Y-%m-%d %H:%M:%S} UTC:")
            for reason in example.reasons:
                # The reasons quote the events' values: escaped, a value cannot write to the terminal.
                self.stderr.write("    " + _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", reason))

    def _confirmed(self, file: str) -> bool:
        """Ask on the terminal; without one (a script, a pipe, the schema read from stdin) the answer is no."""
        if file == "-" or not sys.stdin.isatty():
            return False
        return input("Register it anyway? [y/N] ").strip().lower() in ("y", "yes")
