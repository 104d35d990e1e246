"""The warehouse SQL, run against fakesnow (Snowflake emulated on DuckDB) with what the pipeline wrote to S3.

The pipeline runs for real (ingest, conversion, delivery to moto's Firehose and S3,
reconvert, re-forwarding); the S3 objects are then copied out of moto into a folder
laid out like the bucket, and the project's own stage, raw table, COPY INTO and view
are run on them. Nothing is downloaded: DuckDB reads the local files.

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

from events_app import conf, currency, delivery
from events_app.ingest import ingest_events
from events_app.management.commands.warehouse_sql import render_warehouse_sql, stream_pattern
from events_app.models import Event
from events_app.rates import import_rates

pytestmark = [
    pytest.mark.django_db,
    # fakesnow's own DB-API results, not ours.
    pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning"),
]

SAMPLE = Path(django_settings.BASE_DIR) / "events_app" / "data" / "eurofxref-sample.csv"


@pytest.fixture(autouse=True)
def _fresh_rate_cache():
    currency.clear_rate_cache()
    yield
    currency.clear_rate_cache()


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
    install = {"event_id": str(uuid.uuid4()), "event_type": "install", "player_id": "player-42",
               "occurred_at": "2026-01-09T08:00:00Z", "properties": {"country": "JP"}}  # fmt: skip
    outcome = ingest_events(api_key=game_key[0], raw_events=[jpy, eur, usd, kwd, install], received_at=timezone.now())
    assert outcome.accepted == 5
    assert delivery.deliver_due().delivered == 5
    # The KWD rate arrives; reconvert fills the purchase and sends its line again.
    (tmp_path / "kwd.csv").write_text("date,currency,rate\n2026-01-12,KWD,0.3070\n")
    import_rates(path=tmp_path / "kwd.csv")
    assert currency.reconvert_missing().converted == 1
    assert delivery.deliver_due().delivered == 1

    lines = sorted(download_bucket(moto_firehose, tmp_path / "s3"), key=lambda line: line["emitted_at"])
    by_id = {line["event_id"]: line for line in lines}  # the newest line of each event
    # In S3: the original and the base amounts as the record carries them.
    money = ("price", "quantity", "currency", "revenue", "revenue_base", "base_currency", "fx_rate", "fx_date")
    assert {key: by_id[jpy["event_id"]][key] for key in money} == {
        "price": "1200", "quantity": 3, "currency": "JPY", "revenue": "3600",
        "revenue_base": "22.86", "base_currency": "USD", "fx_rate": "0.006348773842", "fx_date": "2026-01-09",
    }  # fmt: skip
    assert {key: by_id[eur["event_id"]][key] for key in money} == {
        "price": "4.99", "quantity": 1, "currency": "EUR", "revenue": "4.99",
        "revenue_base": "5.81", "base_currency": "USD", "fx_rate": "1.165", "fx_date": "2026-01-09",
    }  # fmt: skip
    assert [line["revenue_base"] for line in lines if line["event_id"] == kwd["event_id"]] == [None, "4.07"]
    assert len(lines) == 6

    sql = render_warehouse_sql(bucket=conf.s3_bucket(), prefix=conf.s3_prefix(), stream=conf.stream_name())
    s3_url = f"'s3://{conf.s3_bucket()}/{conf.s3_prefix()}'"
    local_url = f"'file://{tmp_path / 's3' / conf.s3_bucket() / conf.s3_prefix()}'"
    assert sql["02_stage.sql"].count(s3_url) == 1
    backfill = statements(sql["04_copy_into.sql"])[-1]
    assert copy_of_pipe(sql["05_pipe.sql"]) == backfill  # the pipe loads exactly as the backfill does

    with fakesnow.patch():
        connection = snowflake.connector.connect()
        cursor = connection.cursor(snowflake.connector.DictCursor)
        for name in ("02_stage.sql", "03_raw_table.sql", "04_copy_into.sql", "06_view.sql"):
            for statement in statements(sql[name].replace(s3_url, local_url)):
                cursor.execute(statement)
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
        connection.close()

    assert len(raw) == 6  # every line, the re-forwarded one too
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
    assert kwd_row["EMITTED_AT"] == Event.objects.get(event_id=kwd["event_id"]).emitted_at  # the corrected line
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
    delivery.deliver_due()
    # A resend, as after a lost acknowledgement: the same event again, newer emitted_at.
    Event.objects.update(delivery_state="pending", next_attempt_at=timezone.now())
    delivery.deliver_due()
    lines = download_bucket(moto_firehose, tmp_path / "s3")
    assert len(lines) == 2
    newest = max(line["emitted_at"] for line in lines)

    sql = render_warehouse_sql(bucket=conf.s3_bucket(), prefix=conf.s3_prefix(), stream=conf.stream_name())
    s3_url = f"'s3://{conf.s3_bucket()}/{conf.s3_prefix()}'"
    local_url = f"'file://{tmp_path / 's3' / conf.s3_bucket() / conf.s3_prefix()}'"
    with fakesnow.patch():
        connection = snowflake.connector.connect()
        cursor = connection.cursor(snowflake.connector.DictCursor)
        for name in ("02_stage.sql", "03_raw_table.sql", "04_copy_into.sql", "06_view.sql"):
            for statement in statements(sql[name].replace(s3_url, local_url)):
                cursor.execute(statement)
        raw_count = cursor.execute("SELECT COUNT(*) AS n FROM game_events_raw").fetchone()["N"]
        view = cursor.execute("SELECT event_id, emitted_at, revenue FROM game_events").fetchall()
        connection.close()

    assert raw_count == 2
    assert len(view) == 1
    assert view[0]["EMITTED_AT"].isoformat().replace("+00:00", "Z") == newest
    assert view[0]["REVENUE"] == Decimal("3600")


# The SQL as printed


def test_warehouse_sql_command_prints_every_file_filled_with_the_configured_bucket_prefix_and_stream(settings, capsys):
    settings.FIREHOSE_S3_BUCKET = "studio-lake"
    settings.FIREHOSE_S3_PREFIX = "tracker/events/"
    settings.FIREHOSE_STREAM_NAME = "prod.game-events"

    call_command("warehouse_sql", "--database", "LAKE", "--aws-role-arn", "arn:aws:iam::123456789012:role/sf")

    out = capsys.readouterr().out
    assert "{{" not in out
    for name in ("01_storage_integration", "02_stage", "03_raw_table", "04_copy_into", "05_pipe", "06_view"):
        assert f"-- ===== warehouse/{name}.sql =====" in out
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
    delivery.deliver_due()
    (key,) = [item["Key"] for item in moto_firehose.list_objects_v2(Bucket=conf.s3_bucket())["Contents"]]
    pattern = stream_pattern(conf.stream_name())

    assert re.fullmatch(pattern, key)
    assert re.fullmatch(pattern, key + ".gz")  # Firehose's GZIP compression
    assert not re.fullmatch(pattern, key.replace(conf.stream_name(), "other-stream"))
    assert not re.fullmatch(stream_pattern("game.events"), key.replace("game-events", "gameXevents"))
