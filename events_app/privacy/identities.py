"""Linked identities: the other ids a player was seen under (Segment's anonymousId, alias), for erasure to follow."""

import logging
from collections.abc import Iterable
from datetime import datetime

from django.db import DatabaseError
from django.db.models import Q

from events_app.db import write_transaction
from events_app.models import Game, LinkedIdentity, LinkKind
from sdk.contract import PLAYER_ID_MAX_LENGTH

logger = logging.getLogger(__name__)


def record_links(*, game: Game, links: Iterable[tuple[str, str, str]], seen_at: datetime) -> None:
    """Store the (player_id, linked_id, kind) links not known yet, in one statement.

    Called after the request's events are committed: a failure here must not fail a
    request whose events are stored (a retry would count them twice), so it is logged.
    """
    rows = [
        LinkedIdentity(game=game, player_id=player_id, linked_id=linked_id, kind=kind, first_seen_at=seen_at)
        for player_id, linked_id, kind in set(links)
        if player_id != linked_id and _storable(player_id) and _storable(linked_id)
    ]
    if not rows:
        return
    try:
        with write_transaction():
            LinkedIdentity.objects.bulk_create(rows, ignore_conflicts=True)
    except DatabaseError as exc:
        logger.warning("could not record %d linked identities: %s", len(rows), exc.__class__.__name__)


def _storable(identity: str) -> bool:
    # What a player_id column holds: at most its length, no NUL, valid UTF-8 (no lone surrogate).
    if len(identity) > PLAYER_ID_MAX_LENGTH or "\x00" in identity:
        return False
    try:
        identity.encode()
    except UnicodeEncodeError:
        return False
    return True


def linked_ids(*, game: Game, player_id: str) -> list[str]:
    """Return the other ids of `player_id` in `game`, sorted: its anonymousIds and the ids an alias joined to it.

    One hop, on purpose: an anonymousId also seen with another userId (a shared
    device) does not make that other player this one. An alias joins two ids of one
    player, so it counts both ways.
    """
    pairs = LinkedIdentity.objects.filter(
        Q(player_id=player_id) | Q(linked_id=player_id, kind=LinkKind.ALIAS), game=game
    ).values_list("player_id", "linked_id")
    return sorted({identity for pair in pairs for identity in pair} - {player_id})


def forget_links(*, game: Game, player_ids: Iterable[str]) -> int:
    """Delete the links naming any of `player_ids` (in the current transaction); return how many."""
    ids = list(player_ids)
    return LinkedIdentity.objects.filter(Q(player_id__in=ids) | Q(linked_id__in=ids), game=game).delete()[0]
