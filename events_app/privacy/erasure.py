"""Erasing a player: delete what the database holds of them, suppress their later events, say what is left elsewhere.

`erase_player` first suppresses the player (committed under the game's erasure
lock, see dbwrite.hold_erasure_lock), then deletes their events with their delivery
issues in id-ordered batches, then their rejected events. From the suppression's
commit on, ingest answers their events `suppressed` and stores none (it reads the
list with `suppressed_ids`, in the transaction that stores the others), so the
deletes cannot miss a row stored meanwhile. Erasing again is harmless: it deletes
what may have arrived since (nothing, once suppressed) and keeps the first
suppression's who and when.

Lines already in S3 and rows loaded into Snowflake are not the database's to
delete: `warehouse_delete_sql` gives the statement for the warehouse, and
docs/privacy.md what the operator does for S3.
"""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from events_app import conf
from events_app.db import hold_erasure_lock, write_transaction
from events_app.delivery.warehouse import IDENTIFIER, sql_string
from events_app.kpi.erasure import forget_players
from events_app.models import DeliveryIssue, Event, Game, PurchaseKey, RejectedEvent, SuppressedPlayer
from events_app.privacy import identities

logger = logging.getLogger(__name__)

WAREHOUSE_DATABASE = "ANALYTICS"  # warehouse_sql's defaults
WAREHOUSE_SCHEMA = "PLAYER_EVENTS"
WAREHOUSE_TABLE = "game_events_raw"  # warehouse/03_raw_table.sql


@dataclass
class ErasureCounts:
    """What one erasure deleted, whether it suppressed the player now (False: they were already), and the linked ids."""

    events: int = 0
    issues: int = 0  # delivery issue rows (failed, dead or resent events)
    rejected_events: int = 0
    newly_suppressed: bool = False
    linked_ids: list[str] = field(default_factory=list)  # erased and suppressed with the player


def erase_player(
    *, game: Game, player_id: str, by: str = "", reason: str = "", now: datetime | None = None
) -> ErasureCounts:
    """Suppress `player_id` in `game` and its linked ids, then delete their events, delivery issues and rejected events.

    Returns the counts, summed over the player and its linked ids (identities.linked_ids:
    the anonymousIds seen with it, the ids an alias joined to it). `by` (a user name,
    or "command") and `reason` are kept on the suppressions.
    """
    counts = ErasureCounts(linked_ids=identities.linked_ids(game=game, player_id=player_id))
    erased = [player_id, *counts.linked_ids]
    created_at = now or timezone.now()
    with write_transaction():
        hold_erasure_lock(game.pk, exclusive=True)
        for identity in erased:
            why = reason if identity == player_id else f"linked to {player_id}; {reason}".rstrip("; ")
            _, newly = SuppressedPlayer.objects.get_or_create(
                game=game,
                player_id=identity,
                defaults={"created_at": created_at, "created_by": by[:150], "reason": why[:500]},
            )
            counts.newly_suppressed = counts.newly_suppressed or (newly and identity == player_id)
    # Suppressed now, so no relay counts them again: out of the KPIs, while their events still say what they added.
    forget_players(game=game, player_ids=erased)
    for identity in erased:
        events, issues = _delete_events(game=game, player_id=identity)
        counts.events += events
        counts.issues += issues
        with write_transaction():
            counts.rejected_events += RejectedEvent.objects.filter(_rejections_of(game, identity)).delete()[0]
            # Purchase keys name the player; event keys hold only hashes, and expire within two windows.
            PurchaseKey.objects.filter(game=game, player_id=identity).delete()
    with write_transaction():
        identities.forget_links(game=game, player_ids=erased)
    logger.info(
        "erased game=%s events=%d issues=%d rejected_events=%d linked_ids=%d newly_suppressed=%d by=%s",
        game.slug,
        counts.events,
        counts.issues,
        counts.rejected_events,
        len(counts.linked_ids),
        counts.newly_suppressed,
        by or "-",
    )
    return counts


def unsuppress(*, game: Game, player_id: str, by: str = "") -> bool:
    """Lift the player's suppression, so that their events are stored again; return False if there was none."""
    with write_transaction():
        hold_erasure_lock(game.pk, exclusive=True)
        deleted = SuppressedPlayer.objects.filter(game=game, player_id=player_id).delete()[0]
    logger.info("unsuppressed game=%s lifted=%d by=%s", game.slug, deleted, by or "-")
    return bool(deleted)


def suppressed_ids(*, game: Game, player_ids: Iterable[str], locked: bool = False) -> set[str]:
    """Return which of `player_ids` are suppressed in `game`, in one query.

    Call inside the transaction that stores the others' events: it takes the game's
    erasure lock (shared) first, unless the transaction holds it already (`locked`:
    the ingest transaction takes it in its first statement, events_app.idempotency.begin),
    so an erasure running now is either seen whole or waits for this transaction.
    """
    wanted = set(player_ids)
    if not wanted:
        return set()
    if not locked:
        hold_erasure_lock(game.pk, exclusive=False)
    # One plain statement, on the (game, player_id) unique index: on every ingest
    # request, where building the ORM query cost more than running it (bench/ingest.py).
    table = connection.ops.quote_name(SuppressedPlayer._meta.db_table)
    placeholders = ", ".join(["%s"] * len(wanted))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT player_id FROM {table} WHERE game_id = %s AND player_id IN ({placeholders})",
            [game.pk, *wanted],
        )
        return {player_id for (player_id,) in cursor.fetchall()}


def warehouse_delete_sql(
    *,
    game: Game,
    player_id: str,
    linked_ids: Sequence[str] = (),
    database: str = WAREHOUSE_DATABASE,
    schema: str = WAREHOUSE_SCHEMA,
) -> str:
    """Return the Snowflake statement that deletes the player's lines (and its linked ids') from the raw table."""
    for what, name in (("database", database), ("schema", schema)):
        if not IDENTIFIER.fullmatch(name):
            raise ValueError(f"Not a Snowflake identifier for the {what}: {name!r}")
    ids = [player_id, *linked_ids]
    if len(ids) == 1:
        match = f"= '{sql_string(player_id)}'"
    else:
        match = "IN (" + ", ".join(f"'{sql_string(identity)}'" for identity in ids) + ")"
    return (
        f"DELETE FROM {database}.{schema}.{WAREHOUSE_TABLE}\n"
        f"WHERE record:game::STRING = '{sql_string(game.slug)}'\n"
        f"  AND record:player_id::STRING {match};"
    )


def _delete_events(*, game: Game, player_id: str) -> tuple[int, int]:
    """Delete the player's events with their delivery issues, one short transaction per batch; return both counts."""
    events = issues = 0
    batch_size = conf.purge_batch_size()
    while True:
        # On the player_id index; few players share an id across games.
        ids = list(
            Event.objects.filter(player_id=player_id, game=game)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return events, issues
        with write_transaction():
            # Lock the issues first (PostgreSQL; in pk order, as the retry worker locks them):
            # a sender recording an outcome for one of them finishes first, or finds it gone.
            list(
                DeliveryIssue.objects.filter(event_id__in=ids)
                .order_by("pk")
                .select_for_update()
                .values_list("pk", flat=True)
            )
            issues += DeliveryIssue.objects.filter(event_id__in=ids).delete()[0]
            # only("pk"): the cascade's collector reads the ids, not every payload.
            events += Event.objects.filter(pk__in=ids).only("pk").delete()[1].get(Event._meta.label, 0)


def _rejections_of(game: Game, player_id: str) -> Q:
    """Match the player's rejected events: by the player column, or in a body that named no player of its own."""
    quoted = orjson.dumps(player_id).decode()  # as it appears in the stored JSON body
    return Q(game=game) & (Q(player_id=player_id) | Q(player_id="", body__contains=quoted))
