"""Print a game's daily KPIs, one JSON object per UTC day (Contract 1.2, "Game KPIs")."""

import re
from datetime import date

import orjson
from django.core.management.base import BaseCommand, CommandError

from events_app.kpi.report import RangeError, daily_kpis, default_range
from events_app.models import Game

DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class Command(BaseCommand):
    help = (
        "Print GAME_SLUG's KPIs per UTC day (of derived_at), one JSON object a line, ascending: dau, new_players, "
        "sessions, avg_session_seconds, purchases, paying_players, revenue_base, ad_revenue_base, arpdau and "
        "retention_d1/d7/d30. Default range: the last 30 days through yesterday."
    )

    def add_arguments(self, parser):
        parser.add_argument("game_slug")
        parser.add_argument("--from", dest="start", metavar="YYYY-MM-DD", help="First day (default: 30 days ago).")
        parser.add_argument("--to", dest="end", metavar="YYYY-MM-DD", help="Last day (default: yesterday).")

    def handle(self, *args, game_slug: str, start: str | None, end: str | None, **options):
        game = Game.objects.filter(slug=game_slug).first()
        if game is None:
            raise CommandError(f"No game {game_slug!r}.")
        first, last = default_range()
        try:
            first = _parse(start, "--from") if start is not None else first
            last = _parse(end, "--to") if end is not None else last
            rows = daily_kpis(game=game, start=first, end=last)
        except RangeError as exc:
            raise CommandError(str(exc)) from None
        for row in rows:
            self.stdout.write(orjson.dumps(row.line()).decode())


def _parse(value: str, option: str) -> date:
    """Return the date of a YYYY-MM-DD option, or raise RangeError naming the option."""
    try:
        if not DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise RangeError(f"{option} must be a date as YYYY-MM-DD, not {value!r}.") from None
