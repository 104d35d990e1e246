"""Erase a player: delete their events and rejected events, suppress later ones; print the warehouse SQL."""

from django.core.management.base import BaseCommand, CommandError

from events_app.models import Game
from events_app.privacy import erasure


class Command(BaseCommand):
    help = (
        "Delete PLAYER_ID's events (with their delivery issues) and rejected events in GAME, and suppress the "
        "player: their later events are answered 'suppressed', neither stored nor forwarded. Prints what it "
        "deleted and the Snowflake SQL that removes the player from the warehouse table (S3: see docs/privacy.md). "
        "--unsuppress lifts the suppression."
    )

    def add_arguments(self, parser):
        parser.add_argument("game_slug")
        parser.add_argument("player_id")
        parser.add_argument("--unsuppress", action="store_true", help="Lift the suppression; delete nothing.")
        parser.add_argument("--reason", default="", help="Why, kept with the suppression (e.g. a ticket number).")
        parser.add_argument("--database", default=erasure.WAREHOUSE_DATABASE, help="Snowflake database of the SQL.")
        parser.add_argument("--schema", default=erasure.WAREHOUSE_SCHEMA, help="Snowflake schema of the SQL.")

    def handle(self, *args, game_slug, player_id, unsuppress: bool, reason: str, database: str, schema: str, **opts):
        try:
            game = Game.objects.get(slug=game_slug)
        except Game.DoesNotExist:
            raise CommandError(f"No game {game_slug!r}.") from None
        if unsuppress:
            lifted = erasure.unsuppress(game=game, player_id=player_id, by="erase_player command")
            self.stdout.write(
                f"{game.slug}: {player_id!r} is no longer suppressed; their events are stored again."
                if lifted
                else f"{game.slug}: {player_id!r} was not suppressed; nothing changed."
            )
            return
        try:
            erasure.warehouse_delete_sql(game=game, player_id=player_id, database=database, schema=schema)
        except ValueError as exc:  # checked before anything is erased
            raise CommandError(str(exc)) from exc
        counts = erasure.erase_player(game=game, player_id=player_id, by="erase_player command", reason=reason)
        sql = erasure.warehouse_delete_sql(
            game=game, player_id=player_id, linked_ids=counts.linked_ids, database=database, schema=schema
        )
        self.stdout.write(
            f"deleted events={counts.events} issues={counts.issues} rejected_events={counts.rejected_events}"
        )
        if counts.linked_ids:
            self.stdout.write(
                f"with its linked identities (erased and suppressed too): {', '.join(map(repr, counts.linked_ids))}"
            )
        self.stdout.write(
            f"{game.slug}: {player_id!r} {'is now' if counts.newly_suppressed else 'was already'} suppressed: "
            "their later events are answered 'suppressed', neither stored nor forwarded."
        )
        self.stdout.write("Run in Snowflake to remove the player's lines from the warehouse (docs/privacy.md):")
        self.stdout.write(sql)
