"""Simulated players and what they do: installs, sessions and the events of a session, from one seeded generator.

sdk/simulate.py runs them against a tracker and reports; this module only decides
what each player does next and hands every event to a `track(kind, arguments)`
callable (kind names the Tracker's helper: "install" for track_install, ...).
"""

from __future__ import annotations

import collections
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

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
# Only currencies the ECB publishes a reference rate for, so that a local run (whose
# rates are the bundled ECB history) converts every purchase; KWD (3 decimals) keeps its
# price points for callers that ask for it.
CURRENCY_WEIGHTS = {"USD": 35, "EUR": 25, "GBP": 8, "JPY": 10, "KRW": 6, "BRL": 8, "INR": 6}
TIER_WEIGHTS = (38, 24, 18, 10, 6, 3, 1)  # most buyers take the cheap packs
PLATFORMS = {"android": ("google_play", 55), "ios": ("app_store", 35), "windows": ("steam", 6), "switch": ("eshop", 4)}
INSTALL_SHARE = 0.3  # of steps while some players have not installed yet
NEW_SESSION_SHARE = 0.2  # of steps that start a session (while fewer than the most at once are running)
CONCURRENT_PLAYERS = 0.2  # at most this share of the players is in a session at once
SESSION_EVENTS = (3, 14)  # gameplay events per session, between session_start and session_end
# What a player does in a session, and how often.
GAMEPLAY_WEIGHTS = {"progression": 50, "resource": 32, "ad_impression": 11, "purchase": 0.5}
LEVELS_PER_WORLD = 10
LEVEL_WIN_SHARE = 0.65
# ad format: (weight, revenue range in USD per impression: eCPM / 1000)
AD_FORMATS = {
    "rewarded": (45, (0.008, 0.040)),
    "interstitial": (35, (0.004, 0.020)),
    "banner": (15, (0.0002, 0.0012)),
    "app_open": (5, (0.002, 0.010)),
}
AD_NETWORKS = {"admob": 40, "applovin": 30, "unity_ads": 18, "ironsource": 12}
AD_FILL_SHARE = 0.75  # impressions whose revenue the network reports on the device
SINKS = ("extra_moves", "hammer", "shuffle", "extra_life")  # boosters bought with coins
REWARDS = ("level", "chest", "daily")  # where earned coins come from


@dataclass
class Player:
    player_id: str
    platform: str
    store: str
    country: str
    currency: str
    installed: bool = False
    playing: bool = False  # in a session now
    level: int = 1  # counted from 1 over all worlds
    attempt: int = 1
    in_level: bool = False  # a progression "start" waits for its outcome
    coins: int = 0

    def level_name(self) -> str:
        world, level = divmod(self.level - 1, LEVELS_PER_WORLD)
        return f"world{world + 1}:level{level + 1}"


@dataclass
class Session:
    player: Player
    session_id: str
    started: datetime
    events_left: int


@dataclass
class Tally:
    """What the players did: events tracked per type, offline sessions, and retries of events already sent."""

    by_type: collections.Counter[str] = field(default_factory=collections.Counter)
    offline_sessions: int = 0
    offline_events: int = 0
    duplicate_retries: int = 0

    @property
    def installs(self) -> int:
        return self.by_type["install"]

    @property
    def purchases(self) -> int:
        return self.by_type["purchase"]

    @property
    def tracked(self) -> int:
        return sum(self.by_type.values()) + self.duplicate_retries


class PlayerBase:
    """Players and what they buy, from one seeded random generator."""

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
            player.installed = True
            self.installed.append(player)
            return player
        return None

    def idle_player(self) -> Player | None:
        """Return an installed player who is not playing now, or None if all are."""
        for _ in range(8):  # most are idle: a few random draws find one
            player = self.rng.choice(self.installed)
            if not player.playing:
                return player
        idle = [player for player in self.installed if not player.playing]
        return self.rng.choice(idle) if idle else None

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


class Play:
    """The players' sessions and the events they make, each tracked through `track(kind, arguments)`."""

    def __init__(
        self,
        base: PlayerBase,
        rng: random.Random,
        track: Callable[[str, dict[str, Any]], str | None],
        tally: Tally,
        *,
        offline_share: float,
        duplicate_share: float,
    ) -> None:
        self.base = base
        self.rng = rng
        self._track_event = track
        self.tally = tally
        self.offline_share = offline_share
        self.duplicate_share = duplicate_share
        self.sessions: list[Session] = []
        self.max_sessions = max(1, int(len(base.players) * CONCURRENT_PLAYERS))
        self.recent: deque[tuple[str, dict[str, Any]]] = deque(maxlen=1000)  # (kind, track_* arguments)

    def step(self) -> int:
        """Make the next event (or burst); return how many events were tracked."""
        player = self.base.next_installer()
        if player is not None:
            self.track(
                "install",
                player,
                {
                    "store": player.store,
                    "country": player.country,
                    "device_model": self.rng.choice(["Pixel 9", "iPhone 16", "Galaxy S25", "PC"]),
                },
            )
            if len(self.sessions) >= self.max_sessions:
                return 1  # plays later
            self.sessions.append(self._start(player, datetime.now(UTC)))  # the first session, at once
            return 2
        roll = self.rng.random()
        if self.recent and roll < self.duplicate_share:
            self._duplicate()
            return 1
        if roll < self.duplicate_share + self.offline_share:
            player = self.base.idle_player()
            if player is not None:
                return self._offline_session(player)
        if len(self.sessions) < self.max_sessions and (not self.sessions or roll > 1 - NEW_SESSION_SHARE):
            player = self.base.idle_player()
            if player is not None:
                self.sessions.append(self._start(player, datetime.now(UTC)))
                return 1
        session = self.rng.choice(self.sessions)
        if session.events_left == 0:
            self.sessions.remove(session)
            self._end(session, datetime.now(UTC))
        else:
            self._gameplay(session, datetime.now(UTC))
        return 1

    def end_all(self) -> int:
        """End every running session (the players close the game); return how many events that made."""
        ended = len(self.sessions)
        for session in self.sessions:
            self._end(session, datetime.now(UTC))
        self.sessions.clear()
        return ended

    def track(self, kind: str, player: Player, arguments: dict[str, Any]) -> None:
        """Track one event of `player` with the helper of `kind`, and keep it for a later retry."""
        arguments = {"player_id": player.player_id, "platform": player.platform, **arguments}
        event_id = self._track_event(kind, arguments)
        self.tally.by_type[kind] += 1
        if event_id is not None:
            self.recent.append((kind, {**arguments, "event_id": event_id}))

    def _duplicate(self) -> None:
        kind, arguments = self.rng.choice(self.recent)
        if kind == "purchase" and self.rng.random() < 0.5:
            # A replayed store receipt: a new event, the same transaction.
            arguments = {key: value for key, value in arguments.items() if key != "event_id"}
        self._track_event(kind, arguments)  # otherwise a retry: the same event_id
        self.tally.duplicate_retries += 1

    def _offline_session(self, player: Player) -> int:
        """Play a whole session that happened minutes ago, sent at once; return its events."""
        moment = datetime.now(UTC) - timedelta(minutes=self.rng.uniform(5, 60))
        session = self._start(player, moment)
        count = 2 + session.events_left
        while session.events_left:
            moment += timedelta(seconds=self.rng.uniform(5, 90))
            self._gameplay(session, moment)
        self._end(session, moment + timedelta(seconds=self.rng.uniform(1, 20)))
        self.tally.offline_sessions += 1
        self.tally.offline_events += count
        return count

    def _start(self, player: Player, moment: datetime) -> Session:
        player.playing = True
        session = Session(player, f"sess-{uuid.uuid4()}", moment, self.rng.randint(*SESSION_EVENTS))
        self.track("session_start", player, {"session_id": session.session_id, "occurred_at": moment})
        return session

    def _end(self, session: Session, moment: datetime) -> None:
        duration_ms = (moment - session.started) // timedelta(milliseconds=1)
        self.track(
            "session_end",
            session.player,
            {"session_id": session.session_id, "duration_ms": duration_ms, "occurred_at": moment},
        )
        session.player.playing = False

    def _gameplay(self, session: Session, moment: datetime) -> None:
        """Track one event of a running session: progression, resource, ad impression or purchase."""
        session.events_left -= 1
        player, rng = session.player, self.rng
        common = {"session_id": session.session_id, "occurred_at": moment}
        kind = rng.choices(list(GAMEPLAY_WEIGHTS), weights=list(GAMEPLAY_WEIGHTS.values()))[0]
        if kind == "progression":
            arguments: dict[str, Any] = {"level": player.level_name(), "attempt": player.attempt}
            if not player.in_level:
                arguments["status"] = "start"
                player.in_level = True
            elif rng.random() < LEVEL_WIN_SHARE:
                arguments.update(status="complete", score=rng.randrange(500, 20_000, 10))
                player.level, player.attempt, player.in_level = player.level + 1, 1, False
            else:
                arguments["status"] = "fail"
                player.attempt, player.in_level = player.attempt + 1, False
        elif kind == "resource":
            if player.coins >= 50 and rng.random() < 0.4:
                amount = rng.randrange(20, min(player.coins, 300) + 1, 10)
                player.coins -= amount
                arguments = {"flow": "sink", "item_type": "booster", "item_id": rng.choice(SINKS)}
            else:
                amount = rng.randrange(10, 210, 10)
                player.coins += amount
                arguments = {"flow": "source", "item_type": "reward", "item_id": rng.choice(REWARDS)}
            arguments.update(resource="coins", amount=str(amount))
        elif kind == "ad_impression":
            ad_format = rng.choices(list(AD_FORMATS), weights=[weight for weight, _ in AD_FORMATS.values()])[0]
            network = rng.choices(list(AD_NETWORKS), weights=list(AD_NETWORKS.values()))[0]
            arguments = {"ad_network": network, "ad_format": ad_format, "ad_unit": f"{ad_format}_main"}
            if rng.random() < AD_FILL_SHARE:
                arguments.update(revenue=f"{rng.uniform(*AD_FORMATS[ad_format][1]):.6f}", currency="USD")
        else:
            arguments = self.base.basket(player)
        self.track(kind, player, {**arguments, **common})
