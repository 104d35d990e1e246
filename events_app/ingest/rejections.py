"""A bounded record of recently rejected events, so operators can see why a game's events fail."""

import logging
from datetime import datetime

import orjson
from django.db import DatabaseError

from events_app import conf
from events_app.db import write_transaction
from events_app.models import Game, RejectedEvent
from events_app.privacy.retention import cutoff

logger = logging.getLogger(__name__)

BODY_CHARS = 2048  # of each rejected event, enough to see what was wrong with it
# Of its errors too: they quote what the client sent (names, values), so they are cut alike.
ERROR_CHARS = 2048
# Where a refused body names its player: the native field, then a Segment message's (userId, else anonymousId).
PLAYER_KEYS = ("player_id", "userId", "anonymousId")


def record_rejections(
    *, game: Game | None, received_at: datetime, rejected: list[tuple[object, dict]], status_code: int = 400
) -> None:
    """Store (body, errors) pairs of one request's refused events, at most EVENTS_REJECTIONS_PER_REQUEST of them.

    Call once per request: the first ones are kept, the rest only counted (on the
    last row kept, `not_kept`; the answer and the metrics count them all too). Rows past EVENTS_REJECTIONS_KEPT, and
    the game's rows older than EVENTS_REJECTIONS_MAX_AGE_DAYS, go in the same write.
    Never fails the request that is answering: a lost rejection record is only a
    lost diagnostic.
    """
    if not rejected:
        return
    kept = rejected[: max(conf.rejections_per_request(), 0)]
    if len(kept) < len(rejected):
        logger.info(
            "rejections game=%s kept=%d not_kept=%d (EVENTS_REJECTIONS_PER_REQUEST)",
            game.slug if game else "-",
            len(kept),
            len(rejected) - len(kept),
        )
    if not kept:
        return
    rows = [
        RejectedEvent(
            game=game,
            received_at=received_at,
            status_code=status_code,
            errors=_capped(_storable(orjson.loads(orjson.dumps(errors))), budget=[ERROR_CHARS]),
            body=_truncate(body),
            player_id=player_of(body),
        )
        for body, errors in kept
    ]
    rows[-1].not_kept = len(rejected) - len(kept)  # so that counts of rejections stay exact
    try:
        with write_transaction():
            created = RejectedEvent.objects.bulk_create(rows)
            newest = created[-1].pk or RejectedEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
            # Ids only grow, so everything this far below the newest is older than the
            # rows we keep; deleting by primary key range stays cheap at any size.
            RejectedEvent.objects.filter(pk__lte=newest - conf.rejections_kept()).delete()
            # The age bound between purges, read on the (game, received_at) index.
            too_old = cutoff(days=conf.rejection_retention_days(), now=received_at)
            RejectedEvent.objects.filter(game=game, received_at__lt=too_old).delete()
    except DatabaseError as exc:
        logger.warning("could not record %d rejected events: %s", len(rows), exc.__class__.__name__)


def player_of(body: object) -> str:
    """Return the player id a refused body names (native or Segment field), or "" when it names none usable."""
    if not isinstance(body, dict):
        return ""
    for key in PLAYER_KEYS:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):  # Segment ids may be numbers
            value = str(value)
        if isinstance(value, str) and value:
            return value[: RejectedEvent._meta.get_field("player_id").max_length]
    return ""


def _storable(value: object) -> object:
    """Return `value` with each NUL in its keys and strings written as the text \\u0000.

    Errors name the keys they are about, and a key may hold the NUL it was refused
    for: PostgreSQL's jsonb cannot store one, and the record would be lost.
    """
    if isinstance(value, str):
        return value.replace("\x00", "\\u0000")
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


def _capped(value: object, *, budget: list[int]) -> object:
    """Return `value` (JSON errors) cut to about `budget[0]` characters, spending the budget as it goes.

    The structure stays, so the admin still reads each error by its field: texts past the
    budget end in "…", and the entries after it give way to one saying how many more there were.
    """
    if isinstance(value, str):
        room = max(budget[0], 0)
        budget[0] -= len(value) + 4  # its quotes and separators
        return value if len(value) <= room else value[:room] + "…"
    if isinstance(value, dict):
        kept: dict = {}
        for key, item in value.items():
            if budget[0] <= 0:
                kept["…"] = f"{len(value) - len(kept)} more"
                break
            name = _capped(key, budget=budget)  # before its value, which may spend the rest
            kept[name] = _capped(item, budget=budget)
        return kept
    if isinstance(value, list):
        items: list = []
        for item in value:
            if budget[0] <= 0:
                items.append(f"… {len(value) - len(items)} more")
                break
            items.append(_capped(item, budget=budget))
        return items
    budget[0] -= 8  # a number, true, false or null
    return value


def _truncate(body: object) -> str:
    if isinstance(body, bytes | bytearray):
        text = bytes(body[: BODY_CHARS * 4]).decode("utf-8", errors="replace")
    else:
        try:
            text = orjson.dumps(body).decode()
        except TypeError:
            text = repr(body)
    return text if len(text) <= BODY_CHARS else text[:BODY_CHARS] + "…"
