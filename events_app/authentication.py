"""API key authentication: `Authorization: Bearer <key>` names the game of every event."""

import hmac
import logging
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from .models import ApiKey

logger = logging.getLogger(__name__)

# Writing last_used_at on every request would turn each read into a write; once a
# minute is precise enough for an operator deciding whether a key is still in use.
LAST_USED_RESOLUTION = timedelta(minutes=1)


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
        digest = ApiKey.hash(plaintext)
        api_key = ApiKey.objects.select_related("game").filter(key_hash=digest).first()
        # The lookup is by hash, so timing reveals nothing about the key; compare anyway.
        if api_key is None or not hmac.compare_digest(api_key.key_hash, digest) or not api_key.is_active:
            logger.info("rejected an unknown or revoked API key")
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return (None, api_key)

    def authenticate_header(self, request) -> str:
        # Present so DRF answers 401 (with WWW-Authenticate) rather than 403.
        return self.keyword
