"""Event helpers: timestamps as clients send them."""

from datetime import UTC, datetime


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
