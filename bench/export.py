"""Export benchmark: peak memory and time of the event list's NDJSON and CSV export at 100,000 and 1,000,000 rows.

Usage: .venv/bin/python bench/export.py [--events 1000000] [--sizes 100000,1000000] [--database-url URL] [--reuse]

Fills a database with bench/admin_list.py's loader (by default a SQLite file under
bench/results/, git-ignored; `--reuse` keeps one that already holds the events), then, for each
size and format, starts a fresh Python process that downloads the export of the
newest SIZE events through Django's test client as a logged-in superuser (the view,
its keyset chunks and the streamed response, exactly as a browser gets them),
reading the stream as it comes and keeping none of it. Each process reports its
resident memory before the download (Django loaded, one page rendered) and the
highest it reached during it (read after every chunk), and the time; the smallest
size is the baseline the others compare with: memory that stays flat as the rows
grow tenfold is the point.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the database (default 1,000,000)")
    parser.add_argument("--sizes", default="100000,1000000", help="rows exported, comma-separated")
    parser.add_argument("--formats", default="ndjson,csv")
    parser.add_argument("--database-url", default="", help="default: a SQLite file in bench/results/")
    parser.add_argument("--reuse", action="store_true", help="keep a database that already has the events")
    parser.add_argument("--child", nargs=2, metavar=("FORMAT", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    database_url = args.database_url or f"sqlite:///{ROOT / 'bench' / 'results' / 'export_bench.sqlite3'}"
    if args.child:
        os.environ["DATABASE_URL"] = database_url
        print(json.dumps(measure(args.child[0], int(args.child[1]))))
        return
    fill(database_url, events=args.events, reuse=args.reuse)
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"{'format':<8}{'rows':>11}{'bytes':>15}{'seconds':>9}{'rows/s':>10}{'RSS before':>12}{'RSS peak':>10}")
    baseline: dict[str, dict] = {}
    for export_format in args.formats.split(","):
        for size in sizes:
            child = subprocess.run(
                [sys.executable, __file__, "--database-url", database_url, "--child", export_format, str(size)],
                check=True,
                capture_output=True,
                text=True,
            )
            result = json.loads(child.stdout.strip().splitlines()[-1])
            base = baseline.setdefault(export_format, result)
            more_mb = result["peak_mb"] - base["peak_mb"]
            growth = f"  (x{result['seconds'] / base['seconds']:.1f} time, {more_mb:+.0f} MB)"
            print(
                f"{export_format:<8}{result['rows']:>11,}{result['bytes']:>15,}{result['seconds']:>9.1f}"
                f"{result['rows'] / result['seconds']:>10,.0f}{result['before_mb']:>10.0f}MB{result['peak_mb']:>8.0f}MB"
                + (growth if result is not base else "  (baseline)")
            )


def fill(database_url: str, *, events: int, reuse: bool) -> None:
    """Load the events with bench/admin_list.py's loader into a fresh database, unless `reuse` and they are there."""
    import admin_list

    if database_url.startswith("sqlite:///"):
        path = Path(database_url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        if not reuse:
            for leftover in path.parent.glob(path.name + "*"):
                leftover.unlink()
    elif not reuse:
        admin_list.recreate_postgres_database(database_url)
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracking_project.settings")
    os.environ.setdefault("EVENTS_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    from events_app.models import Event

    call_command("migrate", verbosity=0)
    if reuse and Event.objects.order_by().count() >= events:
        print(f"reusing {database_url}")
        return
    started = time.perf_counter()
    admin_list.load(events, analyze=True)
    print(f"loaded {events:,} events in {time.perf_counter() - started:.0f} s")


def measure(export_format: str, size: int) -> dict:
    """Download the export of the newest `size` events once; return rows, bytes, time and memory."""
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracking_project.settings")
    os.environ.setdefault("EVENTS_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse

    from events_app.models import Event

    settings.DEBUG = False  # DEBUG keeps every query's SQL in memory: not what a server does
    user, _ = User.objects.get_or_create(username="bench", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    first_id = Event.objects.order_by("-pk").values_list("pk", flat=True)[size - 1]
    client.get(reverse("admin:events_app_event_changelist"))  # warm: templates, the admin's registry
    before = _rss_mb()
    highest = before
    url = f"{reverse('admin:events_app_event_export', args=[export_format])}?received=all&id__gte={first_id}"
    started = time.perf_counter()
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    lines = total = 0
    for part in response.streaming_content:
        total += len(part)
        lines += part.count(b"\n")
        highest = max(highest, _rss_mb())  # once per chunk of rows
    seconds = time.perf_counter() - started
    rows = lines - (1 if export_format == "csv" else 0)  # the CSV header
    assert rows == size, (rows, size)
    return {"rows": rows, "bytes": total, "seconds": seconds, "before_mb": before, "peak_mb": highest}


def _rss_mb() -> float:
    """Return the process's resident memory now (Linux), in MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


if __name__ == "__main__":
    main()
