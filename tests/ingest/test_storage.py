"""The log-row insert: repeats skipped by their keys, SQL and ORM paths store identical rows, bad rows refused alone."""

import uuid
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from events_app.delivery.records import build_payload
from events_app.event_types.fields import NUL_MESSAGE
from events_app.ingest import service, storage
from events_app.models import Event

COMPARED = [f.attname for f in Event._meta.concrete_fields if not f.primary_key]


def rows_for(game_key, raw_events: list[dict]) -> list[dict]:
    """Return the rows ingestion would insert for `raw_events`."""
    now = timezone.now()
    serializer = service._event_serializer({"received_at": now, "batch_sent_at": None, "game": game_key[0].game})
    rows = []
    for raw in raw_events:
        data = serializer.run_validation(raw)
        payload = build_payload(event=data, event_id=str(data["event_id"]), game_slug=game_key[0].game.slug)
        rows.append(
            service._row(
                game_id=game_key[0].game_id,
                event_id=data["event_id"],
                data=data,
                payload=payload,
                shards=1,
            )
        )
    return rows


def stored(event_ids) -> list[dict]:
    return list(Event.objects.filter(event_id__in=event_ids).order_by("event_id").values(*COMPARED))


@pytest.mark.parametrize("vendor", [None, "another-database"])
def test_repeats_of_an_event_id_or_a_transaction_id_are_skipped_on_both_paths_and_name_what_they_repeat(
    game_key, make_purchase, monkeypatch, vendor
):
    if vendor is not None:  # the ORM fallback of a database the one-statement path does not know
        monkeypatch.setattr(connection, "vendor", vendor)
    first, second = make_purchase(), make_purchase()
    replay = make_purchase(properties={**first["properties"]})  # same transaction_id, new event_id
    with transaction.atomic():
        stored_first = storage.insert_events(rows_for(game_key, [first]))
        again = storage.insert_events(rows_for(game_key, [first, replay, second]))

    first_id, replay_id, second_id = (uuid.UUID(event["event_id"]) for event in (first, replay, second))
    assert set(stored_first.inserted) == {first_id}
    assert set(again.inserted) == {second_id}
    assert (again.repeats[first_id].key, again.repeats[first_id].event_id) == ("event_id", first_id)
    assert (again.repeats[replay_id].key, again.repeats[replay_id].event_id) == ("transaction_id", first_id)
    assert Event.objects.get(event_id=second_id).pk == again.inserted[second_id]
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
        storage.insert_rows_sql(sql_rows)
        storage.insert_events_orm(orm_rows)

    by_sql = stored([row["event_id"] for row in sql_rows])
    by_orm = stored([row["event_id"] for row in orm_rows])
    assert len(by_sql) == len(by_orm) == 2
    for sql_row, orm_row, source in zip(
        sorted(by_sql, key=lambda r: r["event_type"]),
        sorted(by_orm, key=lambda r: r["event_type"]),
        sorted(sql_rows, key=lambda r: r["event_type"]),
        strict=True,
    ):
        assert {k: v for k, v in sql_row.items() if k not in ("event_id", "transaction_id")} == {
            k: v for k, v in orm_row.items() if k not in ("event_id", "transaction_id")
        }
        assert sql_row["payload"] == source["payload"]
        assert sql_row["shard"] == source["shard"] == 0


def test_of_two_events_with_one_event_id_in_a_batch_the_first_is_stored(game_key, make_install):
    event = make_install()

    outcome = service.ingest_events(
        api_key=game_key[0], raw_events=[event, dict(event, player_id="second")], received_at=timezone.now()
    )

    assert [result["status"] for result in outcome.results] == ["accepted", "rejected"]
    assert list(outcome.results[1]["errors"]) == ["event_id"]  # conflicts with the first
    assert Event.objects.get().player_id == event["player_id"]


@pytest.mark.parametrize("vendor", [None, "another-database"])
def test_the_screened_players_rows_are_left_out_on_both_paths(game_key, make_install, monkeypatch, vendor):
    if vendor is not None:  # the ORM fallback of a database the one-statement path does not know
        monkeypatch.setattr(connection, "vendor", vendor)
    erased, other = make_install(player_id="erased"), make_install(player_id="other")
    screened = []

    def screen(*, player_ids: set[str]) -> set[str]:
        screened.append(sorted(player_ids))
        return {"erased"}

    with transaction.atomic():
        inserted = storage.insert_events(rows_for(game_key, [erased, other]), screen=screen).inserted

    assert list(inserted) == [uuid.UUID(other["event_id"])]
    assert screened == [["erased", "other"]]  # asked once, for every row
    assert list(Event.objects.values_list("player_id", flat=True)) == ["other"]


# Rows no column can hold: refused alone, on both databases, never a 500


def test_a_row_no_column_can_hold_is_refused_by_name_and_the_others_are_stored(game_key, make_install):
    good, bad = rows_for(game_key, [make_install(), make_install()])
    bad["player_id"] = "ay\x00la"  # got past validation somehow: PostgreSQL refuses it, SQLite would keep it
    bad["payload"]["context"] = {"device": {"na\x00me": 1}}

    result = storage.insert_events([bad, good])

    assert set(result.inserted) == {good["event_id"]}
    assert result.refused == {
        bad["event_id"]: {"player_id": [storage.FORBIDDEN_MESSAGE], "context": {"device": [NUL_MESSAGE]}}
    }
    assert list(Event.objects.values_list("event_id", flat=True)) == [good["event_id"]]


def test_a_decimal_too_large_for_its_column_is_refused_naming_the_column(game_key, make_purchase):
    (row,) = rows_for(game_key, [make_purchase()])
    row["revenue_base"] = Decimal("1e24")  # numeric(30, 6) holds 24 digits before the point

    result = storage.insert_events([row])

    assert result.refused[row["event_id"]] == {
        "non_field_errors": ["revenue_base: 1E+24 is too large to store (at most 24 digits before the point)."]
    }
    assert not Event.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite stores what PostgreSQL refuses")
def test_a_data_error_the_checks_did_not_foresee_refuses_only_its_row(game_key, make_install, monkeypatch, caplog):
    good, bad = rows_for(game_key, [make_install(), make_install()])
    bad["player_id"] = "nul\x00"
    monkeypatch.setattr(storage, "unstorable", lambda row: {})  # as if a check were missing

    result = storage.insert_events([bad, good])

    assert set(result.inserted) == {good["event_id"]}
    (errors,) = result.refused.values()
    assert errors["non_field_errors"][0].startswith("Cannot be stored: ")
    assert list(Event.objects.values_list("event_id", flat=True)) == [good["event_id"]]
    assert not result.repeats  # the good row's key, claimed in the rolled-back try, is claimed once again
    assert "trying them one by one" in caplog.text
    assert "nul\x00" not in caplog.text
    database_says = errors["non_field_errors"][0].removeprefix("Cannot be stored: ").rstrip(".")
    assert database_says not in caplog.text  # its message may quote the value: the log has its code only
