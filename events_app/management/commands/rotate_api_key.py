"""Rotate a game's API key: a new key now, the old one working for a grace period; the new key on the last line."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from events_app.api.keys import ROTATION_GRACE, rotate_api_key, working_key
from events_app.models import ApiKey

_DEFAULT_HOURS = ROTATION_GRACE.total_seconds() / 3600


class Command(BaseCommand):
    help = (
        "Issue a new key for the game and keep the old one (found by its visible prefix) working for --grace-hours "
        f"(default {_DEFAULT_HOURS:g}), then 401. Prints the new key alone on the last line (shown once)."
    )

    def add_arguments(self, parser):
        parser.add_argument("game_slug")
        parser.add_argument("key_prefix", help="The old key's visible prefix, as the admin lists it.")
        parser.add_argument(
            "--grace-hours", type=float, default=_DEFAULT_HOURS, help="How long the old key keeps working."
        )

    def handle(self, *args, game_slug: str, key_prefix: str, grace_hours: float, **options):
        if grace_hours < 0:
            raise CommandError("--grace-hours cannot be negative.")
        try:
            old = working_key(game_slug=game_slug, prefix=key_prefix)
        except ApiKey.DoesNotExist:
            raise CommandError(f"Game {game_slug!r} has no working key with the prefix {key_prefix!r}.") from None
        except ApiKey.MultipleObjectsReturned:
            raise CommandError(f"More than one working key of {game_slug!r} starts {key_prefix!r}.") from None
        new, plaintext = rotate_api_key(api_key=old, grace=timedelta(hours=grace_hours))
        until = old.revoked_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        self.stderr.write(
            f"Rotated key {old.prefix}… of game {game_slug}: it works until {until}; the new key {new.prefix}… "
            "is shown only once."
        )
        self.stdout.write(plaintext)
