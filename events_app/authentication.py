"""API key authentication: `Authorization: Bearer <key>` names the game of every event."""

import hmac
import logging
import threading
import time
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import ApiKey

logger = logging.getLogger(__name__)

# Writing last_used_at on every request would turn each read into a write; once a
# minute is precise enough for an operator deciding whether a key is still in use.
LAST_USED_RESOLUTION = timedelta(minutes=1)

# Known keys are remembered in each process for a few seconds, saving a query on
# every request; a revoked key therefore stops working within this time everywhere
# (at once in the process that revoked it).
KEY_CACHE_SECONDS = 5.0
_KEY_CACHE_MAX_ENTRIES = 10_000
_key_cache: dict[str, tuple[float, ApiKey]] = {}
_key_cache_lock = threading.Lock()


def forget_cached_key(key_hash: str) -> None:
    """Drop a key from this process's cache, e.g. right after revoking it."""
    with _key_cache_lock:
        _key_cache.pop(key_hash, None)


def _find_active_key(digest: str) -> ApiKey | None:
    now = time.monotonic()
    cached = _key_cache.get(digest)
    if cached is not None and cached[0] > now:
        return cached[1]
    api_key = ApiKey.objects.select_related("game").filter(key_hash=digest, revoked_at__isnull=True).first()
    if api_key is not None:
        with _key_cache_lock:
            if len(_key_cache) >= _KEY_CACHE_MAX_ENTRIES:
                _key_cache.clear()
            _key_cache[digest] = (now + KEY_CACHE_SECONDS, api_key)
    return api_key


def active_key(plaintext: str) -> ApiKey | None:
    """Return the active API key `plaintext` names, stamping its last use; None if it names none."""
    digest = ApiKey.hash(plaintext)
    api_key = _find_active_key(digest)
    # The lookup is by hash, so timing reveals nothing about the key; compare anyway.
    if api_key is None or not hmac.compare_digest(api_key.key_hash, digest):
        logger.info("rejected an unknown or revoked API key")
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        api_key.last_used_at = now
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticate by API key; `request.auth` is the ApiKey, its game is the events' game."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            raise exceptions.NotAuthenticated("Missing API key: send Authorization: Bearer <key>.")
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: expected Bearer <key>.")
        try:
            plaintext = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.") from None
        api_key = active_key(plaintext)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        return (None, api_key)

    def authenticate_header(self, request) -> str:
        # Present so DRF answers 401 (with WWW-Authenticate) rather than 403.
        return self.keyword
