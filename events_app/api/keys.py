"""API key lifecycle: issue, revoke and rotate a game's keys."""

import logging

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


def revoke_api_key(*, api_key: ApiKey) -> None:
    """Revoke a key: requests carrying it get 401 (within a few seconds on other server processes)."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        forget_cached_key(api_key.key_hash)
        logger.info("revoked API key %s of game %s", api_key.prefix, api_key.game.slug)


@transaction.atomic
def rotate_api_key(*, api_key: ApiKey) -> tuple[ApiKey, str]:
    """Issue a replacement key for the same game and name, and revoke the old one."""
    new_key, plaintext = issue_api_key(game_slug=api_key.game.slug, name=api_key.name)
    revoke_api_key(api_key=api_key)
    return new_key, plaintext
