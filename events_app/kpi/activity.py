"""A player's activity as the KPIs keep it: first day plus bitmaps of active and paying days, and what it counts for.

Pure functions, no database: the aggregates change by the difference between what a
player's state counted for before and after a batch (`contribution`), so a late
event that moves a player's first day moves them between cohorts too.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

RETENTION_DAYS = (1, 7, 30)  # the D1/D7/D30 cohorts


@dataclass
class Activity:
    """First day, and the days active and paying as bit sets (bit i: first_day + i)."""

    first_day: date
    active: int = 0
    paying: int = 0

    @classmethod
    def load(cls, first_day: date, active: bytes, paying: bytes) -> "Activity":
        return cls(first_day, int.from_bytes(bytes(active), "little"), int.from_bytes(bytes(paying), "little"))

    def dump(self) -> tuple[bytes, bytes]:
        """Return the two bitmaps as little-endian bytes (empty for no day)."""
        return _bytes(self.active), _bytes(self.paying)

    @property
    def last_day(self) -> date:
        return self.first_day + timedelta(days=max(self.active.bit_length() - 1, 0))

    def copy(self) -> "Activity":
        return Activity(self.first_day, self.active, self.paying)

    def add(self, day: date, *, paid: bool) -> None:
        """Mark `day` active (and paying); a day before the first one moves the first day back."""
        if day < self.first_day:
            shift = (self.first_day - day).days
            self.active <<= shift
            self.paying <<= shift
            self.first_day = day
        bit = 1 << (day - self.first_day).days
        self.active |= bit
        if paid:
            self.paying |= bit

    def was_active(self, day: date) -> bool:
        offset = (day - self.first_day).days
        return offset >= 0 and bool(self.active >> offset & 1)

    def contribution(self) -> Counter:
        """Return what this player counts for: {(day, counter): 1} for dau, paying_players, new_players, retained_dN."""
        counts: Counter = Counter()
        for offset in _bits(self.active):
            counts[(self.first_day + timedelta(days=offset), "dau")] += 1
        for offset in _bits(self.paying):
            counts[(self.first_day + timedelta(days=offset), "paying_players")] += 1
        counts[(self.first_day, "new_players")] += 1
        for later in RETENTION_DAYS:
            if self.active >> later & 1:
                counts[(self.first_day, f"retained_d{later}")] += 1
        return counts


def change(before: Activity | None, after: Activity | None) -> Counter:
    """Return the counters' change from `before` to `after` (None: the player counted for nothing).

    Only the days whose bits changed, and the cohort when it moved: proportional to
    what the batch did, not to the player's history.
    """
    delta: Counter = Counter()
    if before is None or after is None:
        if before is not None:
            delta.subtract(before.contribution())
        if after is not None:
            delta.update(after.contribution())
        return delta
    old_active, old_paying = _aligned(before, after.first_day)
    for offset in _bits(after.active & ~old_active):
        delta[(after.first_day + timedelta(days=offset), "dau")] += 1
    for offset in _bits(after.paying & ~old_paying):
        delta[(after.first_day + timedelta(days=offset), "paying_players")] += 1
    if _cohort(before) != _cohort(after):
        delta.subtract(_cohort_counts(before))
        delta.update(_cohort_counts(after))
    return delta


def _cohort(activity: Activity) -> tuple:
    return (activity.first_day, *(activity.active >> later & 1 for later in RETENTION_DAYS))


def _cohort_counts(activity: Activity) -> Counter:
    counts = Counter({(activity.first_day, "new_players"): 1})
    for later in RETENTION_DAYS:
        if activity.active >> later & 1:
            counts[(activity.first_day, f"retained_d{later}")] += 1
    return counts


def _aligned(activity: Activity, first_day: date) -> tuple[int, int]:
    """Return the bitmaps of `activity` counted from `first_day` (never later than its own)."""
    shift = (activity.first_day - first_day).days
    return activity.active << shift, activity.paying << shift


def _bits(value: int):
    """Yield the offsets of the set bits, lowest first: one step per set bit, not per bit."""
    while value:
        lowest = value & -value
        yield lowest.bit_length() - 1
        value ^= lowest


def _bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "little") if value else b""
