"""The audit-row insert: the one-statement SQL path and the plain-ORM fallback store identical rows."""

import uuid

import pytest
from django.db import connection, transaction
from django.utils import timezone

from events_app import dbwrite, ingest
from events_app.models import Event
from events_app.records import build_payload

COMPARED = [f.attname for f in Event._meta.concrete_fields if not f.primary_key]


def rows_for(game_key, raw_events: list[dict]) -> list[dict]:
    """Return the rows ingestion would insert for `raw_events`, unleased."""
    now = timezone.now()
    serializer = ingest._event_serializer({"received_at": now, "batch_sent_at": None, "game": game_key[0].game})
    rows = []
    for raw in raw_events:
        data = serializer.run_validation(raw)
        payload = build_payload(event=data, event_id=str(data["event_id"]), game_slug=game_key[0].game.slug)
        rows.append(ingest._row(game_id=game_key[0].game_id, event_id=data["event_id"], data=data, payload=payload,
                                claim_token=uuid.uuid4(), claimed_until=now))  # fmt: skip
    return rows


def stored(event_ids) -> list[dict]:
    return list(Event.objects.filter(event_id__in=event_ids).order_by("event_id").values(*COMPARED))


@pytest.mark.parametrize("insert", [dbwrite.insert_events_sql, dbwrite.insert_events_orm])
def test_both_inserts_skip_ids_the_game_already_has_and_return_the_new_keys(game_key, make_purchase, insert):
    first, second = make_purchase(), make_purchase()
    replay = make_purchase(properties={**first["properties"]})  # same transaction_id, new event_id
    with transaction.atomic():
        inserted = insert(rows_for(game_key, [first]))
        again = insert(rows_for(game_key, [first, replay, second]))

    assert set(inserted) == {uuid.UUID(first["event_id"])}
    assert set(again) == {uuid.UUID(second["event_id"])}
    assert Event.objects.get(event_id=second["event_id"]).pk == again[uuid.UUID(second["event_id"])]
    assert Event.objects.count() == 2


def test_the_sql_and_orm_inserts_store_identical_rows(game_key, make_install, make_purchase):
    raw = [make_install(context={"device": {"ram": 4}}, app_version="1.2", session_id="s"), make_purchase()]
    sql_rows = rows_for(game_key, raw)
    # The same values under other ids, so both can be stored side by side.
    orm_rows = [
        dict(row, event_id=uuid.uuid4(), transaction_id=row["transaction_id"] and f"orm-{row['transaction_id']}")
        for row in sql_rows
    ]
    with transaction.atomic():
        dbwrite.insert_events_sql(sql_rows)
        dbwrite.insert_events_orm(orm_rows)

    by_sql = stored([row["event_id"] for row in sql_rows])
    by_orm = stored([row["event_id"] for row in orm_rows])
    assert len(by_sql) == len(by_orm) == 2
    for sql_row, orm_row, source in zip(
        sorted(by_sql, key=lambda r: r["event_type"]), sorted(by_orm, key=lambda r: r["event_type"]),
        sorted(sql_rows, key=lambda r: r["event_type"]), strict=True,
    ):  # fmt: skip
        assert {k: v for k, v in sql_row.items() if k not in ("event_id", "transaction_id")} == {
            k: v for k, v in orm_row.items() if k not in ("event_id", "transaction_id")
        }
        assert sql_row["payload"] == source["payload"]
        assert sql_row["claimed_until"] == source["claimed_until"]


def test_of_two_rows_with_one_event_id_in_a_statement_the_first_is_stored(game_key, make_install):
    event = make_install()
    first, second = rows_for(game_key, [event]) + rows_for(game_key, [dict(event, player_id="second")])

    with transaction.atomic():
        inserted = dbwrite.insert_events_sql([first, second])

    assert list(inserted) == [uuid.UUID(event["event_id"])]
    assert Event.objects.get().player_id == event["player_id"]


@pytest.mark.parametrize("vendor", [None, "another-database"])
def test_the_screened_players_rows_are_left_out_on_both_paths(game_key, make_install, monkeypatch, vendor):
    if vendor is not None:  # the ORM fallback of a database the one-statement path does not know
        monkeypatch.setattr(connection, "vendor", vendor)
    erased, other = make_install(player_id="erased"), make_install(player_id="other")
    screened = []

    def screen(rows: list[dict]) -> set[str]:
        screened.append(sorted(row["player_id"] for row in rows))
        return {"erased"}

    with transaction.atomic():
        inserted = dbwrite.insert_events(rows_for(game_key, [erased, other]), screen=screen)

    assert list(inserted) == [uuid.UUID(other["event_id"])]
    assert screened == [["erased", "other"]]  # asked once, for every row
    assert list(Event.objects.values_list("player_id", flat=True)) == ["other"]
