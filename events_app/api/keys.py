"""API key lifecycle: issue, revoke and rotate a game's keys."""

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from events_app.api.authentication import forget_cached_key
from events_app.models import API_KEY_VISIBLE_CHARS, ApiKey, Game

logger = logging.getLogger(__name__)

# Shipped game builds carry their key for months: after a rotation the old key keeps
# working this long by default (rotate_api_key --grace-hours, the admin's rotation).
ROTATION_GRACE = timedelta(hours=168)


@transaction.atomic
def issue_api_key(*, game_slug: str, name: str = "") -> tuple[ApiKey, str]:
    """Create the game if new and a key for it; return the key and its plaintext, shown once."""
    game, _ = Game.objects.get_or_create(slug=game_slug, defaults={"name": game_slug})
    plaintext = ApiKey.generate()
    api_key = ApiKey.objects.create(
        game=game, name=name, prefix=plaintext[:API_KEY_VISIBLE_CHARS], key_hash=ApiKey.hash(plaintext)
    )
    logger.info("issued API key %s for game %s", api_key.prefix, game.slug)
    return api_key, plaintext


def revoke_api_key(*, api_key: ApiKey, at: datetime | None = None) -> None:
    """Revoke a key from `at` (default now): requests carrying it then get 401 (within seconds on every process).

    A key revoked from a later time works until then; revoking it from an earlier
    time ends that grace early. A key already revoked stays so.
    """
    now = timezone.now()
    at = at or now
    if not api_key.works_at(now) or (api_key.revoked_at is not None and api_key.revoked_at <= at):
        return
    api_key.revoked_at = at
    api_key.save(update_fields=["revoked_at"])
    forget_cached_key(api_key.key_hash)
    logger.info("revoked API key %s of game %s from %s", api_key.prefix, api_key.game.slug, at.isoformat())


def works_until(*, ends: datetime | None, grace: timedelta, now: datetime | None = None) -> datetime:
    """Return until when a key that `ends` then (None: never) keeps working if rotated at `now` with `grace`.

    Now plus the grace, or the end the key already has if earlier (a key already in
    a grace is never given a longer one).
    """
    end = (now or timezone.now()) + grace
    return min(end, ends) if ends is not None else end


@transaction.atomic
def rotate_api_key(*, api_key: ApiKey, grace: timedelta = ROTATION_GRACE) -> tuple[ApiKey, str]:
    """Issue a replacement key for the same game and name; the old one works until works_until(), then answers 401.

    A grace lets shipped builds keep sending while new builds take the new key.
    """
    new_key, plaintext = issue_api_key(game_slug=api_key.game.slug, name=api_key.name)
    revoke_api_key(api_key=api_key, at=works_until(ends=api_key.revoked_at, grace=grace))
    return new_key, plaintext


def working_key(*, game_slug: str, prefix: str) -> ApiKey:
    """Return the game's key accepted now whose visible prefix is `prefix`; raise ApiKey.DoesNotExist or
    ApiKey.MultipleObjectsReturned when there is none or more than one."""
    return ApiKey.objects.select_related("game").get(
        ApiKey.working_at(timezone.now()), game__slug=game_slug, prefix=prefix
    )
