"""A player's activity bitmaps: compact over 800 days, and what a late earliest event changes."""

from collections import Counter
from datetime import date, timedelta

from events_app.kpi.activity import Activity, change

DAY = date(2026, 1, 1)


def test_a_player_active_every_day_for_800_days_takes_100_bytes():
    activity = Activity(DAY)
    for offset in range(800):
        activity.add(DAY + timedelta(days=offset), paid=offset % 100 == 0)
    active, paying = activity.dump()
    assert (len(active), len(paying)) == (100, 88)
    assert Activity.load(DAY, active, paying) == activity
    assert activity.last_day == DAY + timedelta(days=799)


def test_an_earlier_event_moves_the_player_to_its_cohort_and_counts_the_old_first_day_as_a_return():
    before = Activity(DAY + timedelta(days=7))
    before.add(DAY + timedelta(days=7), paid=False)
    after = before.copy()
    after.add(DAY, paid=True)
    assert change(before, after) == Counter(
        {
            (DAY, "dau"): 1,
            (DAY, "paying_players"): 1,
            (DAY + timedelta(days=7), "new_players"): -1,
            (DAY, "new_players"): 1,
            (DAY, "retained_d7"): 1,  # day 7 is now the new first day's +7
        }
    )
    assert change(after, after) == Counter()
    assert change(after, None) == Counter({key: -1 for key in [*change(None, after)]})
