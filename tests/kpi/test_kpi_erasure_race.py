"""An erasure racing a relay batch that counts the erased player's first events: the player leaves the KPIs."""

import threading

import pytest
from django.db import connection
from django.utils import timezone

from events_app.delivery import engine
from events_app.ingest.service import ingest_events
from events_app.kpi import store
from events_app.models import KpiDay, KpiPlayer
from events_app.privacy import erasure
from tests.delivery.test_relay import FakeDestination
from tests.support.locks import wait_until_an_advisory_lock_is_awaited


@pytest.mark.django_db(transaction=True)
def test_an_erasure_waits_for_the_relay_batch_counting_a_new_player_then_takes_them_out(game_key, make_install):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite queues every writer on one lock: an erasure never runs inside a relay batch")
    game = game_key[0].game
    engine.release_shards()  # this session may hold the shard since an earlier test (a lock outlives transactions)
    assert ingest_events(api_key=game_key[0], raw_events=[make_install()], received_at=timezone.now()).accepted == 1
    counting, finish = threading.Event(), threading.Event()
    write_players = store.write_players

    def write_then_hold(states):
        write_players(states)
        counting.set()  # the new player's row written, the batch not committed: the moment that lost them before
        finish.wait(30)

    def relay():
        engine.deliver_due(destination=FakeDestination())
        connection.close()

    def erase():
        erasure.erase_player(game=game, player_id="player-1")
        connection.close()

    store.write_players = write_then_hold
    try:
        relaying = threading.Thread(target=relay)
        relaying.start()
        assert counting.wait(30)
        erasing = threading.Thread(target=erase)
        erasing.start()
        wait_until_an_advisory_lock_is_awaited("the erasure")
        finish.set()
        for thread in (relaying, erasing):
            thread.join(30)
    finally:
        store.write_players = write_players
        finish.set()

    assert not KpiPlayer.objects.filter(player_id="player-1").exists()
    assert list(KpiDay.objects.values_list("dau", "new_players")) == [(0, 0)]
