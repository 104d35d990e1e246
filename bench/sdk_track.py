"""SDK benchmark: what one track_* call costs the caller's thread, persistence off and on.

Usage: .venv/bin/python bench/sdk_track.py [--calls 100000] [--rate 0] [--kinds install,purchase,...]

Times each call with perf_counter_ns while the tracker's own threads run for real:
the sender batches, gzips and posts to a stand-in tracker in another process (so the
stand-in does not share this process's GIL), and with persistence the spooler writes
to SQLite every 100 ms. --rate paces the calls (0: back to back, the worst case for
GIL contention; a game calls track_* a few times a second). Prints median, p90, p99
and max per call, in microseconds, and whether every event reached the stand-in.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sdk import Tracker  # noqa: E402 (after the path is set)

# A tracker that acknowledges every event of every batch, and nothing else.
STAND_IN = r"""
import gzip, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        events = json.loads(body)["events"]
        results = [{"index": i, "event_id": e["event_id"], "status": "accepted"} for i, e in enumerate(events)]
        data = json.dumps({"accepted": len(events), "duplicates": 0, "rejected": 0, "results": results}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_port, flush=True)
server.serve_forever()
"""


# One typical call of each helper: (helper, its keyword arguments for player n).
PRICE = Decimal("4.99")
CASES = {
    "install": lambda n: {"store": "google_play", "country": "DE", "platform": "android"},
    "purchase": lambda n: {
        "transaction_id": f"GPA.{n}",
        "product_id": "gems_100",
        "price": PRICE,
        "currency": "EUR",
        "platform": "android",
    },
    "session_start": lambda n: {"session_id": f"s-{n}", "platform": "android"},
    "session_end": lambda n: {"session_id": f"s-{n}", "duration_ms": 61_000, "platform": "android"},
    "progression": lambda n: {
        "status": "complete",
        "level": "world1:level3",
        "score": 1200,
        "attempt": 2,
        "session_id": f"s-{n}",
    },
    "resource": lambda n: {
        "flow": "source",
        "resource": "coins",
        "amount": "50",
        "item_type": "reward",
        "session_id": f"s-{n}",
    },
    "ad_impression": lambda n: {
        "ad_network": "admob",
        "ad_format": "rewarded",
        "ad_unit": "rewarded_main",
        "revenue": "0.012345",
        "currency": "USD",
        "session_id": f"s-{n}",
    },
}


def measure(url: str, *, kind: str, calls: int, rate: float, persist: Path | None) -> dict:
    tracker = Tracker(api_key="bench", base_url=url, persist=persist, max_queue_size=calls + 10_000)
    helper = getattr(tracker, f"track_{kind}")
    arguments = CASES[kind]

    def one(n: int) -> None:
        helper(f"player-{n}", **arguments(n))

    for n in range(2000):  # warm-up: imports, caches, the first connection
        one(n)
    tracker.flush(timeout=120)
    clock = time.perf_counter_ns
    costs = []
    started = time.perf_counter()
    for n in range(calls):
        if rate:
            due = started + n / rate
            while time.perf_counter() < due:
                pass
        before = clock()
        one(n)
        costs.append(clock() - before)
    elapsed = time.perf_counter() - started
    delivered = tracker.flush(timeout=300)
    stats = tracker.stats()
    tracker.close()
    costs.sort()
    return {
        "median": statistics.median(costs) / 1000,
        "p90": costs[int(len(costs) * 0.90)] / 1000,
        "p99": costs[int(len(costs) * 0.99)] / 1000,
        "max": costs[-1] / 1000,
        "calls_per_second": calls / elapsed,
        "delivered": delivered and stats.sent == stats.queued and stats.dropped == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000, help="timed calls per case")
    parser.add_argument("--rate", type=float, default=0, help="calls per second (0: back to back)")
    parser.add_argument(
        "--kinds", default="install,purchase", help=f"comma-separated helpers to time, of: {', '.join(CASES)}"
    )
    args = parser.parse_args()
    kinds = [kind.strip() for kind in args.kinds.split(",")]
    if unknown := set(kinds) - set(CASES):
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")

    stand_in = subprocess.Popen([sys.executable, "-c", STAND_IN], stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{stand_in.stdout.readline().strip()}"
        print(
            f"{args.calls:,} calls per case, {'back to back' if not args.rate else f'{args.rate:g}/s'}; "
            f"Python {sys.version.split()[0]}"
        )
        print(f"{'case':<36} {'median':>8} {'p90':>8} {'p99':>8} {'max':>9}  {'calls/s':>9}  all delivered")
        with tempfile.TemporaryDirectory() as folder:
            for persistence in (False, True):
                for kind in kinds:
                    spool = Path(folder) / f"{kind}.sqlite3" if persistence else None
                    result = measure(url, kind=kind, calls=args.calls, rate=args.rate, persist=spool)
                    name = f"track_{kind}, persistence {'on' if persistence else 'off'}"
                    print(
                        f"{name:<36} {result['median']:>6.1f}us {result['p90']:>6.1f}us {result['p99']:>6.1f}us "
                        f"{result['max']:>7.0f}us  {result['calls_per_second']:>9,.0f}  {result['delivered']}"
                    )
    finally:
        stand_in.terminate()
        stand_in.wait()


if __name__ == "__main__":
    main()
