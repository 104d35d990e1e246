"""Counting events into the KPIs: a relay batch (`add_lines`) and revenue that reconvert fills in later (`add_revenue`).

Both run inside the caller's transaction, so the figures move exactly when the
relay's cursor does (or reconvert's correction commits): an event is counted once,
when the relay passes it, toward the UTC day of its `derived_at` however late it
arrived. A batch costs a few statements whatever its size: the suppressed players
among it at once, the players' rows read at once (and those it changes locked),
both tables upserted.
"""

from collections import Counter
from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from events_app.db import hold_erasure_lock
from events_app.kpi import store
from events_app.kpi.activity import Activity, change

# Which revenue column each type with money adds to.
REVENUE_COLUMN = {"purchase": "revenue_base", "ad_impression": "ad_revenue_base"}
# The types event_counts counts besides their revenue (the others add only to their players).
_COUNTED_TYPES = {"session_start", "session_end", "purchase"}


def day_of(payload: dict) -> date:
    """Return the UTC day of the line's derived_at (stored as UTC RFC 3339: the date is its first ten characters)."""
    return date.fromisoformat(payload["derived_at"][:10])


def add_lines(rows: Iterable) -> None:
    """Count log rows (game_id, payload) the relay has just passed into the days and the players' activity.

    A player erased meanwhile (suppressed) is left out: erasure has taken, or will
    take, them out of the figures, and must find nothing added back. The batch holds
    its games' erasure locks (shared) first: an erasure's forgetting (exclusive) then
    runs wholly before the batch, whose read of the suppressed players sees it, or
    wholly after it, when its cursor has moved and the players' rows are written.
    Only the players the batch changes (most events are not a player's first of
    their day) are read again with their rows locked, against another relay writing
    the same player at the same moment.
    """
    lines = [(row.game_id, row.payload) for row in rows]
    if not lines:
        return
    for game_id in sorted({game_id for game_id, _ in lines}):
        hold_erasure_lock(game_id, exclusive=False)
    pairs = {(game_id, payload["player_id"]) for game_id, payload in lines}
    gone = store.suppressed(pairs)
    kept = [(game_id, payload) for game_id, payload in lines if (game_id, payload["player_id"]) not in gone]
    before = store.read_players(pairs - gone, lock=False)
    after, deltas = _count(kept, before)
    changed = {player for player, state in after.items() if state != before.get(player)}
    if changed:
        held = store.read_players(changed, lock=True)
        if any(held.get(player) != before.get(player) for player in changed):  # written meanwhile: count again
            before = {**{player: state for player, state in before.items() if player not in changed}, **held}
            after, deltas = _count(kept, before)
            changed = {player for player, state in after.items() if state != before.get(player)}
    store.write_players({player: after[player] for player in changed})
    store.add_to_days(deltas)


def _count(lines: list[tuple[int, dict]], before: dict) -> tuple[dict, Counter]:
    """Return the players' activity after `lines` (from `before`) and what the lines add to their days."""
    deltas: Counter = Counter()
    after: dict[tuple[int, str], Activity] = {}
    for game_id, payload in lines:
        player = (game_id, payload["player_id"])
        day = day_of(payload)
        event_type = payload.get("event_type")
        state = after.get(player) or (before[player].copy() if player in before else Activity(day))
        state.add(day, paid=event_type == "purchase")
        after[player] = state
        if event_type in _COUNTED_TYPES or payload.get("revenue_base") is not None:
            deltas.update(event_counts(game_id, day, event_type, payload))
    for player, state in after.items():
        game_id = player[0]
        for (day, counter), amount in change(before.get(player), state).items():
            deltas[(game_id, day, counter)] += amount
    return after, deltas


def add_revenue(events: Iterable) -> None:
    """Add the base-currency revenue reconvert has just filled in for events (game_id, payload) the relay had passed.

    The relay counted them without it (left out until a rate is known); the ones it
    has not passed yet it counts, with it, when it does.
    """
    deltas: Counter = Counter()
    for event in events:
        deltas.update(_revenue(event.game_id, day_of(event.payload), event.payload))
    store.add_to_days(deltas)


def event_counts(game_id: int, day: date, event_type: str | None, payload: dict) -> Counter:
    """Return what one event adds to its day's counters besides the players'."""
    counts: Counter = Counter()
    if event_type == "session_start":
        counts[(game_id, day, "sessions")] += 1
    elif event_type == "session_end":
        duration = (payload.get("properties") or {}).get("duration_ms")
        if isinstance(duration, int):
            counts[(game_id, day, "session_ends")] += 1
            counts[(game_id, day, "session_ms")] += duration
    elif event_type == "purchase":
        counts[(game_id, day, "purchases")] += 1
    counts.update(_revenue(game_id, day, payload))
    return counts


def _revenue(game_id: int, day: date, payload: dict) -> Counter:
    column = REVENUE_COLUMN.get(payload.get("event_type"))
    base = payload.get("revenue_base")
    if column is None or base is None:
        return Counter()
    return Counter({(game_id, day, column): Decimal(base)})
