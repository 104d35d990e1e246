"""Taking an erased player out of the KPIs: their activity's share of every day, and the sums of their logged events.

Called by events_app.privacy.erasure once the player is suppressed and before their
events are deleted: the relay counts no suppressed player's event any more, so what
is subtracted here is exactly what was added (the events the relays have passed).
Events the log has already purged are gone: their share of sessions, session time,
purchases and revenue stays in those days (docs/kpi.md); the players' figures
(dau, new players, paying players, retention) come from the activity and stay exact.
"""

from collections import Counter

from events_app import logstore
from events_app.db import hold_erasure_lock, write_transaction
from events_app.kpi import store
from events_app.kpi.activity import change
from events_app.kpi.counting import day_of, event_counts
from events_app.models import DeliveryCursor, Event, Game


def forget_players(*, game: Game, player_ids: list[str]) -> int:
    """Subtract the players' contributions from the game's days and delete their activity; return how many were known.

    A player with no activity row is skipped whole: either never counted, or already
    forgotten by an earlier erasure (erasing again subtracts nothing twice).
    """
    with write_transaction():
        # Exclusive: no relay batch is counting this game's events meanwhile (it holds the lock
        # shared), so what the relays passed is exactly what the cursors say, and no batch
        # that began before the suppression adds a player back after this.
        hold_erasure_lock(game.pk, exclusive=True)
        known = store.read_players({(game.pk, player_id) for player_id in player_ids}, lock=True)
        if not known:
            return 0
        deltas: Counter = Counter()
        for (game_id, _), activity in known.items():
            for (day, counter), amount in change(activity, None).items():
                deltas[(game_id, day, counter)] += amount
        counted = (
            Event.objects.filter(game=game, player_id__in=[player_id for _, player_id in known])
            .exclude(logstore.not_relayed(list(DeliveryCursor.objects.all())))
            .values_list("payload", flat=True)
        )
        for payload in counted.iterator(chunk_size=2000):
            deltas.subtract(event_counts(game.pk, day_of(payload), payload.get("event_type"), payload))
        store.add_to_days(deltas)
        store.delete_players(game.pk, [player_id for _, player_id in known])
    return len(known)
