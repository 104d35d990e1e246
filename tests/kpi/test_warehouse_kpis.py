"""The warehouse's KPI views (warehouse/08_kpi_views.sql) on fakesnow, loaded with the synthetic history's lines:
the same numbers as kpi_report (a parity test)."""

import io
import uuid
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command

from events_app import conf
from events_app.delivery import engine
from events_app.delivery.reconvert import reconvert_missing
from events_app.money.rates import import_rates
from tests.delivery.test_warehouse import loaded_warehouse, rendered_sql, statements
from tests.kpi.history import DAYS, KWD_DAY, START, TODAY, at, build_history, parse_lines

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning"),
]


def write_bucket(lines: list[bytes], folder) -> None:
    """Lay the lines out as Firehose objects of 500 lines under folder/<bucket>/<prefix>."""
    root = folder / conf.s3_bucket() / conf.s3_prefix()
    root.mkdir(parents=True)
    for number, start in enumerate(range(0, len(lines), 500)):
        name = f"{conf.stream_name()}-1-2026-11-10-00-00-{number:02d}-{uuid.uuid4()}"
        (root / name).write_bytes(b"".join(line + b"\n" for line in lines[start : start + 500]))


def test_the_warehouse_views_give_the_numbers_of_kpi_report(tmp_path, snowflake_copy_extras):
    history = build_history()
    # The KWD purchase's rate arrives: reconvert sends its corrected line, which the view keeps.
    (tmp_path / "kwd.csv").write_text(f"date,currency,rate\n{KWD_DAY},KWD,0.3070\n")
    import_rates(path=tmp_path / "kwd.csv")
    with time_machine.travel(at(TODAY, 8), tick=False):
        assert reconvert_missing().converted == 1
        engine.deliver_due(destination=history.destination)
    write_bucket(history.destination.lines, tmp_path / "s3")
    last = START.toordinal() + DAYS - 1
    out = io.StringIO()
    # Today as the warehouse sees it (its CURRENT_DATE): the report's retention cut-off must be the same day.
    call_command(
        "kpi_report", "space-raiders", "--from", START.isoformat(), "--to", str(START.fromordinal(last)), stdout=out
    )
    report = parse_lines(out.getvalue())

    sql = rendered_sql()
    with loaded_warehouse(sql, tmp_path / "s3") as cursor:
        for statement in statements(sql["08_kpi_views.sql"]):
            cursor.execute(statement)
        where = "WHERE game = 'space-raiders' ORDER BY 2"
        dau = cursor.execute(f"SELECT * FROM game_kpi_dau {where}").fetchall()
        revenue = cursor.execute(f"SELECT * FROM game_kpi_revenue {where}").fetchall()
        cohorts = {
            row["COHORT_DAY"]: row for row in cursor.execute(f"SELECT * FROM game_kpi_cohorts {where}").fetchall()
        }

    assert len(dau) == len(revenue) == DAYS  # every day of the history has events
    warehouse = []
    for day_row, money in zip(dau, revenue, strict=True):
        cohort = cohorts.get(day_row["DAY"], {})
        warehouse.append(
            {
                "date": day_row["DAY"].isoformat(),
                "dau": day_row["DAU"],
                "new_players": day_row["NEW_PLAYERS"],
                "sessions": day_row["SESSIONS"],
                "avg_session_seconds": _number(day_row["AVG_SESSION_SECONDS"]),
                "purchases": money["PURCHASES"],
                "paying_players": money["PAYING_PLAYERS"],
                "revenue_base": f"{Decimal(money['REVENUE_BASE']):.2f}",
                "ad_revenue_base": f"{Decimal(money['AD_REVENUE_BASE']):.6f}",
                "arpdau": f"{Decimal(str(money['ARPDAU'])):.4f}",
                **{f"retention_d{n}": _number(cohort.get(f"RETENTION_D{n}")) for n in (1, 7, 30)},
            }
        )
    assert warehouse == report
    assert any(line["retention_d30"] is not None for line in report)  # the cut-off was exercised, not all NULL


def _number(value) -> float | None:
    return None if value is None else float(value)
