"""The audit-row insert: SQL and ORM paths store identical rows; a row no column can hold is refused alone."""

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
    """Return the rows ingestion would insert for `raw_events`, unleased."""
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
                claim_token=uuid.uuid4(),
                claimed_until=now,
            )
        )
    return rows


def stored(event_ids) -> list[dict]:
    return list(Event.objects.filter(event_id__in=event_ids).order_by("event_id").values(*COMPARED))


@pytest.mark.parametrize("insert", [storage.insert_events_sql, storage.insert_events_orm])
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
        storage.insert_events_sql(sql_rows)
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
        assert sql_row["claimed_until"] == source["claimed_until"]


def test_of_two_rows_with_one_event_id_in_a_statement_the_first_is_stored(game_key, make_install):
    event = make_install()
    first, second = rows_for(game_key, [event]) + rows_for(game_key, [dict(event, player_id="second")])

    with transaction.atomic():
        inserted = storage.insert_events_sql([first, second])

    assert list(inserted) == [uuid.UUID(event["event_id"])]
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
def test_a_data_error_the_checks_did_not_foresee_refuses_only_its_row(
    game_key, make_install, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    good, bad = rows_for(game_key, [make_install(), make_install()])
    bad["player_id"] = "nul\x00"
    monkeypatch.setattr(storage, "unstorable", lambda row: {})  # as if a check were missing
    committed = []

    with django_capture_on_commit_callbacks(execute=True):
        result = storage.insert_events([bad, good], after_commit=committed.append)

    assert set(result.inserted) == {good["event_id"]}
    (errors,) = result.refused.values()
    assert errors["non_field_errors"][0].startswith("Cannot be stored: ")
    assert list(Event.objects.values_list("event_id", flat=True)) == [good["event_id"]]
    assert committed == [result.inserted]  # handed to the forwarder once, with the stored row only
    assert "trying them one by one" in caplog.text
    assert "nul\x00" not in caplog.text
    database_says = errors["non_field_errors"][0].removeprefix("Cannot be stored: ").rstrip(".")
    assert database_says not in caplog.text  # its message may quote the value: the log has its code only
