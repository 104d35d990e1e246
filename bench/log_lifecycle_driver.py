"""Run inside `manage.py shell` by bench/log_lifecycle.py: store BENCH_EVENTS events received BENCH_DAYS_AGO days ago.

Works in this tree and in older commits (the ingest service moved packages): prints
one JSON line with the events per second of the stores alone.
"""

import json
import os
import time
import uuid
from datetime import timedelta

from django.utils import timezone

try:
    from events_app.ingest.service import ingest_events
except ImportError:  # before the packages by domain
    from events_app.ingest import ingest_events
try:
    from events_app.api.keys import issue_api_key
except ImportError:
    from events_app.keys import issue_api_key

count = int(os.environ["BENCH_EVENTS"])
received_at = timezone.now() - timedelta(days=int(os.environ["BENCH_DAYS_AGO"]))
try:
    from events_app import logstore

    logstore.ensure_partitions(now=received_at, back=0, ahead=0)
except (ImportError, AttributeError):
    pass
key = issue_api_key(game_slug=f"bench-{uuid.uuid4().hex[:8]}", name="bench")[0]
occurred = received_at.isoformat()
started = time.perf_counter()
for start in range(0, count, 100):
    events = [
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "install",
            "player_id": f"p{(start + i) % 5000}",
            "occurred_at": occurred,
            "platform": "ios",
            "properties": {"store": "app_store", "country": "FR"},
        }
        for i in range(min(100, count - start))
    ]
    ingest_events(api_key=key, raw_events=events, received_at=received_at)
print(json.dumps({"events_per_second": count / (time.perf_counter() - started)}))
