"""Player simulator: drive the SDK like a game's player base, then report what the tracker made of it.

    python -m sdk.simulate --players 200 --duration 30 --rate 50

Each simulated player installs once, then some of them buy, at price points a real
store would show in their currency (USD, EUR, GBP, JPY, KRW, BRL, INR, KWD). Now and
then a player comes back from an offline session with a burst of purchases made
minutes ago, or the game retries an event it already sent (same event_id) or replays
a store receipt (same transaction_id): the tracker must count both as duplicates.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from .client import DEFAULT_BASE_URL, DEV_API_KEY_FILE, _find_api_key
from .tracker import Tracker, TrackerStats

# currency: (countries of its players, store price points from cheapest to dearest)
PRICE_POINTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "USD": (("US",), ("0.99", "1.99", "4.99", "9.99", "19.99", "49.99", "99.99")),
    "EUR": (("DE", "FR", "ES", "IT", "NL"), ("0.99", "1.99", "4.99", "9.99", "19.99", "49.99", "109.99")),
    "GBP": (("GB",), ("0.89", "1.79", "4.49", "8.99", "17.99", "44.99", "89.99")),
    "JPY": (("JP",), ("160", "320", "800", "1600", "3200", "8000", "16000")),
    "KRW": (("KR",), ("1200", "2500", "6500", "12000", "25000", "65000", "129000")),
    "BRL": (("BR",), ("5.90", "10.90", "27.90", "54.90", "109.90", "279.90", "549.90")),
    "INR": (("IN",), ("89", "179", "449", "899", "1799", "4499", "8999")),
    "KWD": (("KW",), ("0.290", "0.590", "1.490", "2.990", "5.990", "14.990", "29.990")),  # 3 decimals
}
CURRENCY_WEIGHTS = {"USD": 35, "EUR": 25, "GBP": 8, "JPY": 10, "KRW": 6, "BRL": 8, "INR": 6, "KWD": 2}
TIER_WEIGHTS = (38, 24, 18, 10, 6, 3, 1)  # most buyers take the cheap packs
PLATFORMS = {"android": ("google_play", 55), "ios": ("app_store", 35), "windows": ("steam", 6), "switch": ("eshop", 4)}
INSTALL_SHARE = 0.3  # of events while some players have not installed yet


@dataclass
class Player:
    player_id: str
    platform: str
    store: str
    country: str
    currency: str
    installed: bool = False


@dataclass
class Simulation:
    """What the simulator did, and what the tracker answered."""

    players: int
    duration: float
    rate: float
    installs: int = 0
    purchases: int = 0
    bursts: int = 0
    burst_events: int = 0
    duplicate_retries: int = 0
    elapsed: float = 0.0  # from the first event until flush() returned
    flush_seconds: float = 0.0
    flushed: bool = False
    stats: TrackerStats | None = None
    errors: list[str] = field(default_factory=list)  # the first few on_error reports

    @property
    def tracked(self) -> int:
        return self.installs + self.purchases + self.duplicate_retries

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


class PlayerBase:
    """Players and the events they make, from one seeded random generator."""

    def __init__(self, players: int, rng: random.Random) -> None:
        self.rng = rng
        currencies = list(CURRENCY_WEIGHTS)
        platforms = list(PLATFORMS)
        self.players = []
        for n in range(players):
            currency = rng.choices(currencies, weights=list(CURRENCY_WEIGHTS.values()))[0]
            platform = rng.choices(platforms, weights=[weight for _, weight in PLATFORMS.values()])[0]
            self.players.append(
                Player(
                    player_id=f"sim-{n:06d}-{uuid.uuid4().hex[:8]}",
                    platform=platform,
                    store=PLATFORMS[platform][0],
                    country=rng.choice(PRICE_POINTS[currency][0]),
                    currency=currency,
                )
            )
        self.waiting = list(reversed(self.players))  # not installed yet
        self.installed: list[Player] = []

    def next_installer(self) -> Player | None:
        if self.waiting and (not self.installed or self.rng.random() < INSTALL_SHARE):
            player = self.waiting.pop()
            self.installed.append(player)
            return player
        return None

    def buyer(self) -> Player:
        return self.rng.choice(self.installed)

    def basket(self, player: Player) -> dict[str, Any]:
        """Return the purchase fields of one store transaction."""
        tier = self.rng.choices(range(len(TIER_WEIGHTS)), weights=TIER_WEIGHTS)[0]
        return {
            "transaction_id": f"{player.store}.{uuid.uuid4()}",
            "product_id": f"gems_tier_{tier + 1}",
            "price": PRICE_POINTS[player.currency][1][tier],
            "currency": player.currency,
            "quantity": 1 if self.rng.random() < 0.9 else self.rng.randint(2, 5),
            "store": player.store,
        }


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
    recent: deque[tuple[str, dict[str, Any]]] = deque(maxlen=1000)  # (kind, track_* arguments)
    options = {"flush_interval": 0.5, **(tracker_options or {})}

    def on_error(error: Exception, events: list[dict[str, Any]]) -> None:
        if len(result.errors) < 3:
            result.errors.append(f"{len(events)} events: {error}")

    tracker = Tracker(base_url=url, api_key=api_key, persist=persist, on_error=on_error, **options)
    # Without a rate, keep the queue from overflowing: the simulator stands for many
    # devices, each of which would queue its own few events.
    high_water = 10 * options.get("batch_size", 100)

    def track(kind: str, arguments: dict[str, Any]) -> None:
        method = tracker.track_install if kind == "install" else tracker.track_purchase
        event_id = method(**arguments)
        if event_id is not None:
            recent.append((kind, {**arguments, "event_id": event_id}))

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
            made += _one_step(base, rng, track, recent, result, offline_share, duplicate_share)
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


def _one_step(
    base: PlayerBase,
    rng: random.Random,
    track: Callable[[str, dict[str, Any]], None],
    recent: deque[tuple[str, dict[str, Any]]],
    result: Simulation,
    offline_share: float,
    duplicate_share: float,
) -> int:
    """Make the next event (or burst); return how many events were tracked."""
    player = base.next_installer()
    if player is not None:
        track(
            "install",
            {"player_id": player.player_id, "store": player.store, "country": player.country,
             "platform": player.platform, "device_model": rng.choice(["Pixel 9", "iPhone 16", "Galaxy S25", "PC"])},
        )  # fmt: skip
        result.installs += 1
        return 1
    roll = rng.random()
    if recent and roll < duplicate_share:
        kind, arguments = rng.choice(recent)
        if kind == "purchase" and rng.random() < 0.5:
            # A replayed store receipt: a new event, the same transaction.
            arguments = {key: value for key, value in arguments.items() if key != "event_id"}
        track(kind, arguments)  # otherwise a retry: the same event_id
        result.duplicate_retries += 1
        return 1
    buyer = base.buyer()
    if roll < duplicate_share + offline_share:
        # Back from an offline session: purchases made minutes ago, all sent now.
        count = rng.randint(5, 20)
        now = datetime.now(UTC)
        for minutes in sorted((rng.uniform(1, 30) for _ in range(count)), reverse=True):
            track(
                "purchase",
                {"player_id": buyer.player_id, "platform": buyer.platform, **base.basket(buyer),
                 "occurred_at": now - timedelta(minutes=minutes)},
            )  # fmt: skip
        result.bursts += 1
        result.burst_events += count
        result.purchases += count
        return count
    track("purchase", {"player_id": buyer.player_id, "platform": buyer.platform, **base.basket(buyer)})
    result.purchases += 1
    return 1


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
    target = f"{result.rate:g} events/s target" if result.rate else "as fast as the tracker takes them"
    lines = [f"error       {error}" for error in result.errors]
    return "\n".join(
        [
            f"players     {result.players:,} ({result.installs:,} installed), {result.duration:g} s, {target}",
            f"tracked     {result.tracked:,} events: {result.installs:,} installs, {result.purchases:,} purchases "
            f"({result.bursts:,} offline bursts, {result.burst_events:,} events), "
            f"{result.duplicate_retries:,} duplicate retries",
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
    parser = argparse.ArgumentParser(prog="python -m sdk.simulate", description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=100, help="simulated players (default 100)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of play (default 10)")
    parser.add_argument("--rate", type=float, default=50.0, help="events per second, all players (0: unlimited)")
    parser.add_argument("--url", help=f"tracker base URL (default: TRACKER_URL, else {DEFAULT_BASE_URL})")
    parser.add_argument("--api-key", help=f"API key (default: TRACKER_API_KEY, else {DEV_API_KEY_FILE})")
    parser.add_argument("--persist", metavar="PATH", help="spool file: turn on offline persistence")
    parser.add_argument("--seed", type=int, help="random seed, for a repeatable run")
    parser.add_argument("--offline-share", type=float, default=0.01, help="share of steps that are offline bursts")
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
        url=url, api_key=api_key, players=args.players, duration=args.duration, rate=args.rate,
        persist=args.persist, seed=args.seed, offline_share=args.offline_share,
        duplicate_share=args.duplicate_share, progress=sys.stderr if show_progress else None,
    )  # fmt: skip
    print(summary(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
