"""API key lifecycle: issue, revoke and rotate a game's keys."""

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from events_app.api.authentication import forget_cached_key
from events_app.models import API_KEY_VISIBLE_CHARS, ApiKey, Game

logger = logging.getLogger(__name__)


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


@transaction.atomic
def rotate_api_key(*, api_key: ApiKey, grace: timedelta = timedelta(0)) -> tuple[ApiKey, str]:
    """Issue a replacement key for the same game and name; the old one works for `grace` more, then answers 401.

    Shipped game builds carry their key for months: a grace lets them keep sending
    while new builds take the new key.
    """
    new_key, plaintext = issue_api_key(game_slug=api_key.game.slug, name=api_key.name)
    revoke_api_key(api_key=api_key, at=timezone.now() + grace)
    return new_key, plaintext


def working_key(*, game_slug: str, prefix: str) -> ApiKey:
    """Return the game's key accepted now whose visible prefix is `prefix`; raise ApiKey.DoesNotExist or
    ApiKey.MultipleObjectsReturned when there is none or more than one."""
    return ApiKey.objects.select_related("game").get(
        ApiKey.working_at(timezone.now()), game__slug=game_slug, prefix=prefix
    )
