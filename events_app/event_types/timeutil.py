"""Timestamps: strict RFC 3339 parsing and the UTC `Z` form used in records and answers."""

import re
from datetime import UTC, datetime

# RFC 3339 section 5.6: full date, 'T' (or space, which the RFC allows), full time with
# optional fraction, and a mandatory offset. fromisoformat alone would also take dates
# without a time, week dates and naive times.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})")


def parse_rfc3339(value: str) -> datetime | None:
    """Return the aware datetime `value` names, or None if it is not RFC 3339 with an offset."""
    if not _RFC3339.fullmatch(value):
        return None
    text = value.upper()
    dot = text.find(".")
    if dot != -1:
        # Python keeps microseconds; RFC 3339 allows any precision, so cut the rest.
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        if end - dot > 7:
            text = text[: dot + 7] + text[end:]
    try:
        return datetime.fromisoformat(text)
    except ValueError:  # out-of-range parts such as month 13 or hour 25
        return None


def iso_utc(value: datetime) -> str:
    """Return `value` in UTC as ISO 8601 with microseconds and a `Z`."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
