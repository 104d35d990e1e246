"""Player simulator: drive the SDK like a game's player base, then report what the tracker made of it.

    python -m sdk.simulate --players 200 --duration 30 --rate 50

Each simulated player installs once, then plays sessions, several players at a time:
session_start, progression through the levels (start, then complete or fail, with
score and attempt), virtual currency earned and spent (resource), the odd ad
impression (with ad revenue, often a fraction of a cent) and purchase (at price
points a real store would show in their currency: USD, EUR, GBP, JPY, KRW, BRL,
INR), and session_end with the same session_id and the session's duration. Now and
then a player comes back from an offline session: the whole session, played minutes
ago, sent at once. The game sometimes retries an event it already sent (same
event_id) or replays a store receipt (same transaction_id): the tracker must count
both as duplicates.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from .client import DEFAULT_BASE_URL, DEV_API_KEY_FILE, _find_api_key
from .gameplay import Play, PlayerBase, Tally
from .tracker import Tracker, TrackerStats


@dataclass(kw_only=True)
class Simulation(Tally):
    """What the simulator did (the players' tally), and what the tracker answered."""

    players: int
    duration: float
    rate: float
    elapsed: float = 0.0  # from the first event until flush() returned
    flush_seconds: float = 0.0
    flushed: bool = False
    stats: TrackerStats | None = None
    errors: list[str] = field(default_factory=list)  # the first few on_error reports

    @property
    def events_per_second(self) -> float:
        """Return events the tracker acknowledged per second of the run."""
        assert self.stats is not None
        return self.stats.sent / self.elapsed if self.elapsed else 0.0

    @property
    def ok(self) -> bool:
        """Return True if every event was acknowledged and the duplicates were the retries and replays."""
        stats = self.stats
        assert stats is not None
        return (
            self.flushed
            and stats.failed == 0
            and stats.dropped == 0
            and stats.pending == 0
            and stats.duplicates == self.duplicate_retries
        )


def run(
    *,
    url: str,
    api_key: str,
    players: int,
    duration: float,
    rate: float,
    persist: str | None = None,
    seed: int | None = None,
    offline_share: float = 0.01,
    duplicate_share: float = 0.02,
    progress: TextIO | None = None,
    tracker_options: dict[str, Any] | None = None,
) -> Simulation:
    """Simulate `players` for `duration` seconds at `rate` events/s (0: as fast as the tracker takes them)."""
    rng = random.Random(seed)
    base = PlayerBase(players, rng)
    result = Simulation(players=players, duration=duration, rate=rate)
    options = {"flush_interval": 0.5, **(tracker_options or {})}

    def on_error(error: Exception, events: list[dict[str, Any]]) -> None:
        if len(result.errors) < 3:
            result.errors.append(f"{len(events)} events: {error}")

    tracker = Tracker(base_url=url, api_key=api_key, persist=persist, on_error=on_error, **options)
    # Without a rate, keep the queue from overflowing: the simulator stands for many
    # devices, each of which would queue its own few events.
    high_water = 10 * options.get("batch_size", 100)

    def track(kind: str, arguments: dict[str, Any]) -> str | None:
        return getattr(tracker, f"track_{kind}")(**arguments)

    play = Play(base, rng, track, result, offline_share=offline_share, duplicate_share=duplicate_share)
    started = time.monotonic()
    stop_at = started + duration
    last_draw = started
    made = 0
    try:
        while (now := time.monotonic()) < stop_at:
            if progress is not None and now - last_draw >= 0.2:
                _draw(progress, result, tracker.stats(), now - started)
                last_draw = now
            if rate > 0:
                due = started + made / rate
                if due > now:
                    time.sleep(min(due - now, 0.05))
                    continue
            elif tracker.pending >= high_water:
                time.sleep(0.001)
                continue
            made += play.step()
        play.end_all()
        flush_started = time.monotonic()
        result.flushed = tracker.flush(timeout=max(60.0, duration))
        finished = time.monotonic()
    finally:
        tracker.close(timeout=10)
    result.flush_seconds = finished - flush_started
    result.elapsed = finished - started
    result.stats = tracker.stats()
    if progress is not None:
        _draw(progress, result, result.stats, result.elapsed)
        progress.write("\n")
    return result


def _draw(out: TextIO, result: Simulation, stats: TrackerStats, elapsed: float) -> None:
    done = min(1.0, elapsed / result.duration) if result.duration else 1.0
    width = 30
    bar = "#" * int(done * width) + "-" * (width - int(done * width))
    speed = stats.sent / elapsed if elapsed else 0.0
    out.write(
        f"\r[{bar}] {done:4.0%} {elapsed:6.1f}/{result.duration:.0f} s  tracked {stats.queued:>8,}  "
        f"sent {stats.sent:>8,}  pending {stats.pending:>6,}  {speed:>8,.0f} events/s"
    )
    out.flush()


def summary(result: Simulation) -> str:
    """Return the run's figures as a few aligned lines."""
    stats = result.stats
    assert stats is not None
    counts = result.by_type
    target = f"{result.rate:g} events/s target" if result.rate else "as fast as the tracker takes them"
    lines = [f"error       {error}" for error in result.errors]
    return "\n".join(
        [
            f"players     {result.players:,} ({result.installs:,} installed), {result.duration:g} s, {target}",
            f"tracked     {result.tracked:,} events: {counts['install']:,} installs, "
            f"{counts['session_start']:,} sessions ({counts['session_end']:,} ended), "
            f"{counts['progression']:,} progression, {counts['resource']:,} resource, "
            f"{counts['ad_impression']:,} ad impressions, {counts['purchase']:,} purchases, "
            f"{result.duplicate_retries:,} duplicate retries",
            f"offline     {result.offline_sessions:,} sessions played offline, {result.offline_events:,} events "
            "sent late",
            f"sent        {stats.sent:,} acknowledged: accepted {stats.accepted:,}, duplicates {stats.duplicates:,} "
            f"(expected {result.duplicate_retries:,})",
            f"not sent    rejected {stats.rejected:,}, failed {stats.failed:,}, dropped {stats.dropped:,}, "
            f"pending {stats.pending:,}",
            f"delivery    {stats.requests:,} requests, {stats.retried:,} events retried, "
            f"{result.events_per_second:,.0f} events/s ({stats.sent:,} in {result.elapsed:.1f} s, "
            f"final flush {result.flush_seconds:.2f} s)",
            *lines,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run the simulation and print its summary; return 0 if every event was acknowledged as expected."""
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}.simulate", description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=100, help="simulated players (default 100)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of play (default 10)")
    parser.add_argument("--rate", type=float, default=50.0, help="events per second, all players (0: unlimited)")
    parser.add_argument("--url", help=f"tracker base URL (default: TRACKER_URL, else {DEFAULT_BASE_URL})")
    parser.add_argument("--api-key", help=f"API key (default: TRACKER_API_KEY, else {DEV_API_KEY_FILE})")
    parser.add_argument("--persist", metavar="PATH", help="spool file: turn on offline persistence")
    parser.add_argument("--seed", type=int, help="random seed, for a repeatable run")
    parser.add_argument(
        "--offline-share", type=float, default=0.01, help="share of steps that replay a whole offline session"
    )
    parser.add_argument("--duplicate-share", type=float, default=0.02, help="share of steps that are retries")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a TTY)"
    )
    args = parser.parse_args(argv)
    api_key = _find_api_key(args.api_key)
    if not api_key:
        print(f"error: no API key: pass --api-key, set TRACKER_API_KEY, or write {DEV_API_KEY_FILE}", file=sys.stderr)
        return 1
    url = args.url or os.environ.get("TRACKER_URL") or DEFAULT_BASE_URL
    show_progress = sys.stderr.isatty() if args.progress is None else args.progress
    result = run(
        url=url,
        api_key=api_key,
        players=args.players,
        duration=args.duration,
        rate=args.rate,
        persist=args.persist,
        seed=args.seed,
        offline_share=args.offline_share,
        duplicate_share=args.duplicate_share,
        progress=sys.stderr if show_progress else None,
    )
    print(summary(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
