"""The warehouse SQL, run against fakesnow (Snowflake emulated on DuckDB) with what the pipeline wrote to S3.

The pipeline runs for real (ingest, conversion, delivery to moto's Firehose and S3,
reconvert, the corrected line sent again); the S3 objects are then copied out of moto
into a folder laid out like the bucket, and the project's own stage, raw table, COPY INTO and view
are run on them, and the per-type views generated from the event type registry.
Nothing is downloaded: DuckDB reads the local files.

fakesnow 0.12.1 runs COPY INTO from a stage (file format lookup, stage resolution,
load history that skips files already loaded) but not three things the project's
COPY uses; `snowflake_copy_extras` adds them for the test, without touching the SQL:
the bare `$1` of a JSON file, METADATA$FILENAME / METADATA$FILE_ROW_NUMBER, and
PATTERN (with a recursive listing of the stage, as S3 prefixes are). It cannot run
CREATE STORAGE INTEGRATION or CREATE PIPE: the pipe's COPY is checked to be the
backfill's and run as such. See warehouse/README.md.
"""

import re
import uuid
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import fakesnow
import fakesnow.copy_into
import fakesnow.cursor
import orjson
import pytest
import snowflake.connector
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.utils import timezone
from sqlglot import exp, parse_one

from events_app import conf
from events_app.delivery import engine, resend, status
from events_app.delivery.reconvert import reconvert_missing
from events_app.delivery.warehouse import (
    CUSTOM_COLUMNS,
    CUSTOM_VIEW,
    EVENT_COLUMNS,
    LOAD_COLUMNS,
    PRICE_COLUMNS,
    REVENUE_COLUMNS,
    render_warehouse_sql,
    stream_pattern,
    type_view_columns,
    type_view_name,
    type_views_sql,
)
from events_app.event_types import REGISTRY, WarehouseColumn, custom
from events_app.ingest.service import ingest_events
from events_app.models import Event, UnknownEventPolicy
from events_app.money.rates import import_rates
from events_app.privacy.erasure import warehouse_delete_sql

pytestmark = [
    pytest.mark.django_db,
    # fakesnow's own DB-API results, not ours.
    pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning"),
]

SAMPLE = Path(django_settings.BASE_DIR) / "events_app" / "data" / "eurofxref-sample.csv"


# fakesnow, taught the three COPY features it lacks


@pytest.fixture
def snowflake_copy_extras(monkeypatch):
    """Make fakesnow's COPY INTO understand `$1`, METADATA$ columns and PATTERN over nested folders."""
    original_copy_into = fakesnow.copy_into.copy_into
    original_inserts = fakesnow.copy_into._inserts
    state = {"pattern": None, "root": None}

    def copy_into(duck_conn, current_database, current_schema, expr, table_stages, params=None):
        expr = expr.copy()
        kept = []
        for parameter in expr.args.get("params") or []:
            if parameter.this.name.upper() == "PATTERN":
                state["pattern"] = parameter.expression.name
            else:
                kept.append(parameter)
        expr.set("params", kept)
        return original_copy_into(duck_conn, current_database, current_schema, expr, table_stages, params)

    def source_glob(source: str, duck_conn) -> list[str]:
        root = Path(source.removeprefix("file://"))
        state["root"] = root
        files = sorted(path for path in root.rglob("*") if path.is_file())
        pattern = state["pattern"]
        return [str(path) for path in files if pattern is None or re.fullmatch(pattern, _object_key(path, root))]

    def inserts(expr, params, urls, parquet_info=None):
        result = []
        for url in urls:
            one = expr.copy()
            for node in list(one.find_all(exp.Parameter)):
                if node.this.name == "1":  # the whole JSON value: read_json_objects' column
                    node.replace(exp.column("json", quoted=True))
            for node in list(one.find_all(exp.Column)):
                if node.name.upper() == "METADATA$FILENAME":
                    node.replace(exp.Literal.string(_object_key(Path(url), state["root"])))
                elif node.name.upper() == "METADATA$FILE_ROW_NUMBER":
                    node.replace(parse_one("ROW_NUMBER() OVER ()", read="duckdb"))
            result += original_inserts(one, params, [url], parquet_info)
        return result

    monkeypatch.setattr(fakesnow.cursor, "copy_into", copy_into)
    monkeypatch.setattr(fakesnow.copy_into, "_source_glob", source_glob)
    monkeypatch.setattr(fakesnow.copy_into, "_inserts", inserts)


def _object_key(path: Path, stage_root: Path) -> str:
    """Return the S3 key of a local copy: the stage root is <folder>/<bucket>/<prefix>."""
    bucket_root = stage_root
    for _ in conf.s3_prefix().strip("/").split("/"):
        bucket_root = bucket_root.parent
    return path.relative_to(bucket_root).as_posix()


def statements(sql: str) -> list[str]:
    """Split a file of the warehouse folder into its statements (comment lines dropped)."""
    text = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [statement.strip() for statement in re.split(r";\s*(?:\n|$)", text) if statement.strip()]


def copy_of_pipe(sql: str) -> str:
    """Return the COPY INTO statement a CREATE PIPE runs."""
    (pipe,) = [statement for statement in statements(sql) if statement.upper().startswith("CREATE PIPE")]
    return pipe[pipe.upper().index("COPY INTO") :]


SETUP_FILES = ("02_stage.sql", "03_raw_table.sql", "04_copy_into.sql", "06_view.sql", "07_type_views.sql")


@contextmanager
def loaded_warehouse(sql: dict[str, str], s3_copy: Path):
    """Run the setup files on fakesnow with the stage on the local copy of the bucket; yield a dict cursor."""
    s3_url = f"'s3://{conf.s3_bucket()}/{conf.s3_prefix()}'"
    local_url = f"'file://{s3_copy / conf.s3_bucket() / conf.s3_prefix()}'"
    assert sql["02_stage.sql"].count(s3_url) == 1
    with fakesnow.patch():
        connection = snowflake.connector.connect()
        try:
            cursor = connection.cursor(snowflake.connector.DictCursor)
            for name in SETUP_FILES:
                for statement in statements(sql[name].replace(s3_url, local_url)):
                    cursor.execute(statement)
            yield cursor
        finally:
            connection.close()


def rendered_sql() -> dict[str, str]:
    return render_warehouse_sql(bucket=conf.s3_bucket(), prefix=conf.s3_prefix(), stream=conf.stream_name())


# The pipeline


def purchase(*, price: str, code: str, occurred_at: str, quantity: int = 1) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "purchase",
        "player_id": "player-42",
        "occurred_at": occurred_at,
        "platform": "android",
        "properties": {
            "transaction_id": f"txn-{uuid.uuid4()}",
            "product_id": "coins",
            "price": price,
            "currency": code,
            "quantity": quantity,
        },
    }


def download_bucket(s3, folder: Path) -> list[dict]:
    """Copy every object of the delivery bucket into folder/<bucket>/<key>; return all lines."""
    lines = []
    for item in s3.list_objects_v2(Bucket=conf.s3_bucket())["Contents"]:
        body = s3.get_object(Bucket=conf.s3_bucket(), Key=item["Key"])["Body"].read()
        target = folder / conf.s3_bucket() / item["Key"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        lines += [orjson.loads(line) for line in body.splitlines()]
    return lines


def test_pipeline_output_loads_into_snowflake_and_the_view_keeps_one_row_per_event(
    game_key, moto_firehose, tmp_path, snowflake_copy_extras
):
    import_rates(path=SAMPLE)
    jpy = purchase(price="1200", code="JPY", quantity=3, occurred_at="2026-01-09T12:00:00Z")
    eur = purchase(price="4.99", code="EUR", occurred_at="2026-01-10T09:00:00Z")  # Saturday: Friday's rate
    usd = purchase(price="2.99", code="USD", occurred_at="2026-01-12T09:00:00Z")
    kwd = purchase(price="1.250", code="KWD", occurred_at="2026-01-12T10:00:00Z")  # no rate yet
    install = {
        "event_id": str(uuid.uuid4()),
        "event_type": "install",
        "player_id": "player-42",
        "occurred_at": "2026-01-09T08:00:00Z",
        "properties": {"country": "JP"},
    }
    outcome = ingest_events(api_key=game_key[0], raw_events=[jpy, eur, usd, kwd, install], received_at=timezone.now())
    assert outcome.accepted == 5
    assert engine.deliver_due().delivered == 5
    # The KWD rate arrives; reconvert fills the purchase and sends its line again.
    (tmp_path / "kwd.csv").write_text("date,currency,rate\n2026-01-12,KWD,0.3070\n")
    import_rates(path=tmp_path / "kwd.csv")
    assert reconvert_missing().converted == 1
    assert engine.deliver_due().delivered == 1

    lines = sorted(download_bucket(moto_firehose, tmp_path / "s3"), key=lambda line: line["emitted_at"])
    by_id = {line["event_id"]: line for line in lines}  # the newest line of each event
    # In S3: the original and the base amounts as the record carries them.
    money = ("price", "quantity", "currency", "revenue", "revenue_base", "base_currency", "fx_rate", "fx_date")
    assert {key: by_id[jpy["event_id"]][key] for key in money} == {
        "price": "1200",
        "quantity": 3,
        "currency": "JPY",
        "revenue": "3600",
        "revenue_base": "22.86",
        "base_currency": "USD",
        "fx_rate": "0.006348773842",
        "fx_date": "2026-01-09",
    }
    assert {key: by_id[eur["event_id"]][key] for key in money} == {
        "price": "4.99",
        "quantity": 1,
        "currency": "EUR",
        "revenue": "4.99",
        "revenue_base": "5.81",
        "base_currency": "USD",
        "fx_rate": "1.165",
        "fx_date": "2026-01-09",
    }
    assert [line["revenue_base"] for line in lines if line["event_id"] == kwd["event_id"]] == [None, "4.07"]
    assert len(lines) == 6

    sql = rendered_sql()
    backfill = statements(sql["04_copy_into.sql"])[-1]
    assert copy_of_pipe(sql["05_pipe.sql"]) == backfill  # the pipe loads exactly as the backfill does

    with loaded_warehouse(sql, tmp_path / "s3") as cursor:
        # The backfill again (the pipe runs the same COPY): every object is loaded already, none twice.
        cursor.execute(backfill)
        assert {row["status"] for row in cursor.fetchall()} == {"LOAD_SKIPPED"}

        raw = cursor.execute("SELECT file_name, file_row_number, loaded_at FROM game_events_raw").fetchall()
        view = cursor.execute("SELECT * FROM game_events ORDER BY occurred_at").fetchall()
        # The casts change nothing on Snowflake; fakesnow sums anything not cast as DOUBLE.
        per_currency = cursor.execute(
            "SELECT currency, SUM(revenue::NUMBER(38, 6)) AS revenue, SUM(revenue_base::NUMBER(38, 6)) AS revenue_base,"
            " COUNT(*) AS purchases FROM game_events WHERE event_type = 'purchase' GROUP BY currency ORDER BY currency"
        ).fetchall()
        totals = cursor.execute(
            "SELECT base_currency, SUM(revenue_base::NUMBER(38, 6)) AS revenue_base FROM game_events "
            "WHERE event_type = 'purchase' GROUP BY base_currency"
        ).fetchall()

    assert len(raw) == 6  # every line, the corrected one sent again too
    assert all(row["FILE_NAME"].startswith(conf.s3_prefix()) and row["LOADED_AT"] for row in raw)
    assert {row["FILE_ROW_NUMBER"] for row in raw} >= {1}
    assert len(view) == 5
    assert len({row["EVENT_ID"] for row in view}) == 5
    rows = {row["EVENT_ID"]: row for row in view}
    jpy_row = rows[jpy["event_id"]]
    assert (jpy_row["PRICE"], jpy_row["QUANTITY"], jpy_row["REVENUE"]) == (Decimal("1200"), 3, Decimal("3600"))
    assert (jpy_row["REVENUE_BASE"], jpy_row["BASE_CURRENCY"]) == (Decimal("22.86"), "USD")
    assert (jpy_row["FX_RATE"], jpy_row["FX_DATE"]) == (Decimal("0.006348773842"), date(2026, 1, 9))
    assert jpy_row["OCCURRED_AT"].isoformat() == "2026-01-09T12:00:00+00:00"
    assert jpy_row["GAME"] == "space-raiders"
    assert orjson.loads(jpy_row["PROPERTIES"])["product_id"] == "coins"
    assert orjson.loads(rows[install["event_id"]]["PROPERTIES"]) == {"country": "JP"}
    assert rows[install["event_id"]]["REVENUE"] is None
    kwd_row = rows[kwd["event_id"]]
    assert (kwd_row["REVENUE_BASE"], kwd_row["FX_DATE"]) == (Decimal("4.07"), date(2026, 1, 12))
    corrected = status.delivery_issue(Event.objects.get(event_id=kwd["event_id"])).delivered_by
    assert kwd_row["EMITTED_AT"] == corrected.emitted_at  # the line the retry worker sent last
    assert [(row["CURRENCY"], row["REVENUE"], row["REVENUE_BASE"], row["PURCHASES"]) for row in per_currency] == [
        ("EUR", Decimal("4.99"), Decimal("5.81"), 1),
        ("JPY", Decimal("3600"), Decimal("22.86"), 1),
        ("KWD", Decimal("1.25"), Decimal("4.07"), 1),
        ("USD", Decimal("2.99"), Decimal("2.99"), 1),
    ]
    assert [(row["BASE_CURRENCY"], row["REVENUE_BASE"]) for row in totals] == [("USD", Decimal("35.73"))]


def test_the_view_keeps_the_newest_line_of_an_event_delivered_twice(
    game_key, moto_firehose, tmp_path, snowflake_copy_extras
):
    import_rates(path=SAMPLE)
    event = purchase(price="1200", code="JPY", quantity=3, occurred_at="2026-01-09T12:00:00Z")
    ingest_events(api_key=game_key[0], raw_events=[event], received_at=timezone.now())
    engine.deliver_due()
    # A resend, as after a lost acknowledgement: the same event again, newer emitted_at.
    assert resend.resend_event(event=Event.objects.get(), user=None).resent == 1
    assert engine.deliver_due().delivered == 1
    lines = download_bucket(moto_firehose, tmp_path / "s3")
    assert len(lines) == 2
    newest = max(line["emitted_at"] for line in lines)

    with loaded_warehouse(rendered_sql(), tmp_path / "s3") as cursor:
        raw_count = cursor.execute("SELECT COUNT(*) AS n FROM game_events_raw").fetchone()["N"]
        view = cursor.execute("SELECT event_id, emitted_at, revenue FROM game_events").fetchall()
        purchases = cursor.execute("SELECT event_id, emitted_at FROM game_events_purchase").fetchall()

    assert raw_count == 2
    assert len(view) == 1
    assert view[0]["EMITTED_AT"].isoformat().replace("+00:00", "Z") == newest
    assert view[0]["REVENUE"] == Decimal("3600")
    assert purchases == [{"EVENT_ID": event["event_id"], "EMITTED_AT": view[0]["EMITTED_AT"]}]  # deduplicated too


# Every event type, through the per-type views

LEVEL_UP_SCHEMA = {
    "type": "object",
    "properties": {"level": {"type": "integer", "minimum": 1}, "class": {"type": "string"}},
    "required": ["level"],
}


def an_event(event_type: str, properties: dict | None = None, **fields) -> dict:
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "player_id": "player-42",
        "occurred_at": "2026-01-09T12:00:00Z",
        "platform": "ios",
        "session_id": "session-7",
        "properties": properties or {},
    }
    event.update(fields)
    return event


@pytest.fixture
def every_type_loaded(game_key, moto_firehose, tmp_path, snowflake_copy_extras):
    """Send one event of each type (two ad impressions, two custom types) through the pipeline and load them.

    Yield (events by name, S3 lines by event_id, a fakesnow dict cursor).
    """
    import_rates(path=SAMPLE)
    game = game_key[0].game
    game.unknown_events = UnknownEventPolicy.ACCEPT
    game.save(update_fields=["unknown_events"])
    custom.register_schema(game=game, event_type="level_up", schema={"type": "object"})
    custom.register_schema(game=game, event_type="level_up", schema=LEVEL_UP_SCHEMA)  # version 2 validates
    events = {
        "install": an_event("install", {"store": "app_store", "country": "JP", "campaign": "spring"}),
        "purchase": an_event(
            "purchase", {"transaction_id": "txn-1", "product_id": "coins", "price": "4.99", "currency": "EUR"}
        ),
        "session_start": an_event("session_start"),
        "session_end": an_event("session_end", {"duration_ms": 600_000}),
        "progression": an_event(
            "progression", {"status": "complete", "level": "world1:level3", "score": 1200, "attempt": 2}
        ),
        "resource": an_event(
            "resource",
            {"flow": "sink", "resource": "gems", "amount": "12.5", "item_type": "booster", "item_id": "speed_up"},
        ),
        "ad_impression": an_event(
            "ad_impression",
            {
                "ad_network": "admob",
                "ad_format": "rewarded",
                "ad_unit": "rewarded_main",
                "revenue": "0.0125",
                "currency": "EUR",
            },
        ),
        "unpaid ad_impression": an_event("ad_impression", {"ad_network": "unity", "ad_format": "banner"}),
        "identify": an_event("identify", {"name": "Ada", "plan": "vip"}),
        "page": an_event("page", {"path": "/shop"}),
        "screen": an_event("screen", {"name": "Shop"}),
        "group": an_event("group", {"group_id": "guild-9"}),
        "alias": an_event("alias", {"previous_id": "anon-1"}),
        "level_up": an_event("level_up", {"level": 5, "class": "mage", "loot": {"gold": 30}}),
        "tutorial_skipped": an_event("tutorial_skipped", {"step": 3}),  # no schema: accepted by the policy
    }
    outcome = ingest_events(api_key=game_key[0], raw_events=list(events.values()), received_at=timezone.now())
    assert outcome.accepted == len(events), outcome.results
    assert engine.deliver_due().delivered == len(events)
    lines = {line["event_id"]: line for line in download_bucket(moto_firehose, tmp_path / "s3")}
    with loaded_warehouse(rendered_sql(), tmp_path / "s3") as cursor:
        yield events, lines, cursor


def one_row(cursor, view: str, event: dict) -> dict:
    """Return the only row of `view` for `event`."""
    (row,) = cursor.execute(f"SELECT * FROM {view} WHERE event_id = '{event['event_id']}'").fetchall()
    return row


def test_each_built_in_type_has_a_view_with_exactly_its_events_and_its_typed_columns(every_type_loaded):
    events, _, cursor = every_type_loaded

    counts = {
        name: cursor.execute(f"SELECT COUNT(*) AS n FROM {type_view_name(name)}").fetchone()["N"] for name in REGISTRY
    }
    assert counts == {name: 2 if name == "ad_impression" else 1 for name in REGISTRY}
    assert cursor.execute(f"SELECT COUNT(*) AS n FROM {CUSTOM_VIEW}").fetchone()["N"] == 2
    assert cursor.execute("SELECT COUNT(*) AS n FROM game_events").fetchone()["N"] == len(events)
    assert one_row(cursor, "game_events_session_end", events["session_end"])["DURATION_MS"] == 600_000
    assert one_row(cursor, "game_events_session_start", events["session_start"])["SESSION_ID"] == "session-7"
    progression = one_row(cursor, "game_events_progression", events["progression"])
    assert (progression["STATUS"], progression["LEVEL"], progression["SCORE"], progression["ATTEMPT"]) == (
        "complete",
        "world1:level3",
        1200,
        2,
    )
    resource = one_row(cursor, "game_events_resource", events["resource"])
    assert {key: resource[key] for key in ("FLOW", "RESOURCE", "AMOUNT", "ITEM_TYPE", "ITEM_ID")} == {
        "FLOW": "sink",
        "RESOURCE": "gems",
        "AMOUNT": Decimal("12.5"),
        "ITEM_TYPE": "booster",
        "ITEM_ID": "speed_up",
    }
    ad = one_row(cursor, "game_events_ad_impression", events["ad_impression"])
    assert (ad["AD_NETWORK"], ad["AD_FORMAT"], ad["AD_UNIT"]) == ("admob", "rewarded", "rewarded_main")
    unpaid = one_row(cursor, "game_events_ad_impression", events["unpaid ad_impression"])
    assert (unpaid["AD_NETWORK"], unpaid["AD_UNIT"], unpaid["REVENUE"], unpaid["REVENUE_BASE"]) == (
        "unity",
        None,
        None,
        None,
    )
    install = one_row(cursor, "game_events_install", events["install"])
    assert (install["STORE"], install["COUNTRY"], install["CAMPAIGN"], install["DEVICE_MODEL"]) == (
        "app_store",
        "JP",
        "spring",
        None,
    )
    purchase_row = one_row(cursor, "game_events_purchase", events["purchase"])
    assert (purchase_row["TRANSACTION_ID"], purchase_row["PRODUCT_ID"], purchase_row["REVENUE"]) == (
        "txn-1",
        "coins",
        Decimal("4.99"),
    )
    for name in ("identify", "page", "screen", "group", "alias"):  # free-form: properties kept whole
        row = one_row(cursor, type_view_name(name), events[name])
        assert orjson.loads(row["PROPERTIES"]) == events[name]["properties"]


def test_ad_revenue_is_queryable_in_the_base_currency_beside_purchase_revenue(every_type_loaded):
    events, lines, cursor = every_type_loaded
    ad_line = lines[events["ad_impression"]["event_id"]]
    assert {key: ad_line[key] for key in ("currency", "revenue", "base_currency", "fx_rate", "fx_date")} == {
        "currency": "EUR",
        "revenue": "0.0125",
        "base_currency": "USD",
        "fx_rate": "1.165",
        "fx_date": "2026-01-09",
    }

    ad = one_row(cursor, "game_events_ad_impression", events["ad_impression"])
    by_type = cursor.execute(
        "SELECT event_type, SUM(revenue_base::NUMBER(38, 6)) AS revenue_base, ANY_VALUE(base_currency) AS base"
        " FROM game_events WHERE revenue IS NOT NULL GROUP BY event_type ORDER BY event_type"
    ).fetchall()

    assert (ad["CURRENCY"], ad["REVENUE"], ad["BASE_CURRENCY"]) == ("EUR", Decimal("0.0125"), "USD")
    # 0.0125 x 1.165 = 0.0145625: sub-cent ad revenue is kept, to the record's 6 decimal places.
    assert ad["REVENUE_BASE"] == Decimal(ad_line["revenue_base"]) == Decimal("0.014562")
    assert (ad["FX_RATE"], ad["FX_DATE"]) == (Decimal("1.165"), date(2026, 1, 9))
    assert [(row["EVENT_TYPE"], row["REVENUE_BASE"], row["BASE"]) for row in by_type] == [
        ("ad_impression", Decimal(ad_line["revenue_base"]), "USD"),
        ("purchase", Decimal("5.81"), "USD"),
    ]


def test_custom_types_carry_their_schema_version_and_keep_properties_as_variant(every_type_loaded):
    events, lines, cursor = every_type_loaded
    assert lines[events["level_up"]["event_id"]]["event_schema_version"] == 2
    assert lines[events["tutorial_skipped"]["event_id"]]["event_schema_version"] is None
    assert "event_schema_version" not in lines[events["progression"]["event_id"]]

    custom = cursor.execute(f"SELECT * FROM {CUSTOM_VIEW} ORDER BY event_type").fetchall()
    versions = cursor.execute(
        "SELECT event_type, event_schema_version FROM game_events WHERE event_schema_version IS NOT NULL"
    ).fetchall()

    assert [(row["EVENT_TYPE"], row["EVENT_SCHEMA_VERSION"]) for row in custom] == [
        ("level_up", 2),
        ("tutorial_skipped", None),
    ]
    assert orjson.loads(custom[0]["PROPERTIES"]) == {"level": 5, "class": "mage", "loot": {"gold": 30}}
    assert orjson.loads(custom[1]["PROPERTIES"]) == {"step": 3}
    assert [(row["EVENT_TYPE"], row["EVENT_SCHEMA_VERSION"]) for row in versions] == [("level_up", 2)]


def test_per_type_views_have_the_columns_of_game_events_their_type_uses_then_its_own(every_type_loaded):
    _, _, cursor = every_type_loaded

    def columns(view: str) -> tuple[str, ...]:
        cursor.execute(f"SELECT * FROM {view} LIMIT 0")
        return tuple(column.name.lower() for column in cursor.description)

    # What the command assumes of 06_view.sql, checked against the view as created.
    assert columns("game_events") == EVENT_COLUMNS + CUSTOM_COLUMNS + PRICE_COLUMNS + REVENUE_COLUMNS + LOAD_COLUMNS
    assert columns(CUSTOM_VIEW) == EVENT_COLUMNS + CUSTOM_COLUMNS + LOAD_COLUMNS
    for name, event_type in REGISTRY.items():
        assert columns(type_view_name(name)) == type_view_columns(event_type)
    assert columns("game_events_purchase")[15:23] == PRICE_COLUMNS + REVENUE_COLUMNS
    assert columns("game_events_ad_impression")[15:21] == REVENUE_COLUMNS  # no price or quantity
    assert "revenue" not in columns("game_events_progression")


# The per-type views, generated


def test_a_newly_registered_type_gets_its_view_without_editing_any_sql(monkeypatch):
    quest = replace(
        REGISTRY["progression"],
        name="quest",
        warehouse_columns=(
            WarehouseColumn("quest_id", "STRING", "properties:quest_id"),
            WarehouseColumn("reward_gold", "NUMBER(38, 6)", "properties:reward.gold"),
        ),
    )
    monkeypatch.setitem(REGISTRY, "quest", quest)

    sql = rendered_sql()["07_type_views.sql"]

    (view,) = [statement for statement in statements(sql) if "VIEW game_events_quest\n" in statement]
    assert "  properties:quest_id::STRING AS quest_id,\n" in view
    assert "  properties:reward.gold::NUMBER(38, 6) AS reward_gold,\n" in view
    assert view.endswith("FROM game_events\nWHERE event_type = 'quest'")
    (custom,) = [statement for statement in statements(sql) if f"VIEW {CUSTOM_VIEW}\n" in statement]
    assert "'quest'" in custom  # no longer counted as custom


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        (WarehouseColumn("order", "STRING", "properties:order"), "unreserved Snowflake identifier"),
        (WarehouseColumn("revenue", "NUMBER(38, 6)", "properties:revenue"), "already a column of the view"),
        (WarehouseColumn("event_schema_version", "INTEGER", "properties:v"), "already a column of the view"),
        (WarehouseColumn("level", "STRING", "record:level"), "is not <properties|context>"),
        (WarehouseColumn("level", "STRING", "properties:level'; DROP TABLE x"), "is not <properties|context>"),
        (WarehouseColumn("level", "STRING); DROP TABLE x", "properties:level"), "is not a Snowflake type"),
    ],
)
def test_a_typed_column_the_view_cannot_have_is_refused_naming_its_type(column, reason):
    registry = {"purchase": replace(REGISTRY["purchase"], warehouse_columns=(column,))}

    with pytest.raises(ValueError, match=re.escape(reason)) as error:
        type_views_sql(registry)
    assert "of event type 'purchase'" in str(error.value)


def test_warehouse_sql_command_refuses_a_registry_it_cannot_render(monkeypatch):
    broken = replace(REGISTRY["install"], warehouse_columns=(WarehouseColumn("select", "STRING", "properties:s"),))
    monkeypatch.setitem(REGISTRY, "install", broken)

    with pytest.raises(CommandError, match="'select' of event type 'install'"):
        call_command("warehouse_sql")


# The SQL as printed


def test_warehouse_sql_command_prints_every_file_filled_with_the_configured_bucket_prefix_and_stream(settings, capsys):
    settings.FIREHOSE_S3_BUCKET = "studio-lake"
    settings.FIREHOSE_S3_PREFIX = "tracker/events/"
    settings.FIREHOSE_STREAM_NAME = "prod.game-events"

    call_command("warehouse_sql", "--database", "LAKE", "--aws-role-arn", "arn:aws:iam::123456789012:role/sf")

    out = capsys.readouterr().out
    assert "{{" not in out
    names = (
        "01_storage_integration",
        "02_stage",
        "03_raw_table",
        "04_copy_into",
        "05_pipe",
        "06_view",
        "07_type_views",
    )
    for name in names:
        assert f"-- ===== warehouse/{name}.sql =====" in out
    for event_type in REGISTRY:
        assert f"CREATE OR REPLACE VIEW game_events_{event_type}\n" in out
    assert f"CREATE OR REPLACE VIEW {CUSTOM_VIEW}\n" in out
    assert "URL = 's3://studio-lake/tracker/events/'" in out
    assert "STORAGE_ALLOWED_LOCATIONS = ('s3://studio-lake/tracker/events/')" in out
    assert "STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::123456789012:role/sf'" in out
    assert "USE SCHEMA LAKE.PLAYER_EVENTS;" in out
    assert "PATTERN = '.*prod[.]game-events-[0-9]+-[0-9]{4}(-[0-9]{2}){5}-.*'" in out


def test_warehouse_sql_command_refuses_a_name_that_is_not_an_identifier():
    with pytest.raises(CommandError, match="not a plain Snowflake identifier"):
        call_command("warehouse_sql", "--schema", "x; DROP TABLE y")


def test_stream_pattern_matches_the_objects_firehose_writes_and_only_those(game_key, moto_firehose):
    ingest_events(
        api_key=game_key[0],
        raw_events=[{"event_type": "install", "player_id": "p", "occurred_at": "2026-01-09T08:00:00Z"}],
        received_at=timezone.now(),
    )
    engine.deliver_due()
    (key,) = [item["Key"] for item in moto_firehose.list_objects_v2(Bucket=conf.s3_bucket())["Contents"]]
    pattern = stream_pattern(conf.stream_name())

    assert re.fullmatch(pattern, key)
    assert re.fullmatch(pattern, key + ".gz")  # Firehose's GZIP compression
    assert not re.fullmatch(pattern, key.replace(conf.stream_name(), "other-stream"))
    assert not re.fullmatch(stream_pattern("game.events"), key.replace("game-events", "gameXevents"))


def test_the_erasure_sql_deletes_exactly_the_players_lines_from_the_warehouse(
    game_key, moto_firehose, tmp_path, snowflake_copy_extras
):
    def install(player_id: str) -> dict:
        return {
            "event_id": str(uuid.uuid4()),
            "event_type": "install",
            "player_id": player_id,
            "occurred_at": "2026-01-09T08:00:00Z",
            "properties": {},
        }

    erased, kept = install("o'neil"), install("player-2")
    ingest_events(api_key=game_key[0], raw_events=[erased, kept, install("o'neil")], received_at=timezone.now())
    assert engine.deliver_due().delivered == 3
    download_bucket(moto_firehose, tmp_path / "s3")
    sql = warehouse_delete_sql(game=game_key[0].game, player_id="o'neil")
    assert "'o''neil'" in sql

    with loaded_warehouse(rendered_sql(), tmp_path / "s3") as cursor:
        cursor.execute(sql)
        raw = cursor.execute("SELECT record:player_id::STRING AS player FROM game_events_raw").fetchall()
        view = cursor.execute("SELECT event_id FROM game_events").fetchall()

    assert [row["PLAYER"] for row in raw] == ["player-2"]
    assert [row["EVENT_ID"] for row in view] == [kept["event_id"]]
