"""Create a game (if new) and an API key for it; print the plaintext key on the last line."""

from django.core.management.base import BaseCommand

from events_app.api.keys import issue_api_key


class Command(BaseCommand):
    help = "Create the game if new and an API key for it; prints the key alone on the last line (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("game_slug")
        parser.add_argument("--name", default="", help="A label for the key, e.g. 'ios build'.")

    def handle(self, *args, game_slug: str, name: str, **options):
        api_key, plaintext = issue_api_key(game_slug=game_slug, name=name)
        self.stderr.write(f"Created key {api_key.prefix}… for game {api_key.game.slug}; it is shown only once.")
        self.stdout.write(plaintext)
