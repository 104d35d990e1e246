"""Write keys as Segment's clients send them: HTTP Basic (key as user name), `writeKey` in the body, or the URL."""

import base64
import binascii

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from events_app.api.authentication import active_key, client_address
from events_app.models import ApiKey

_UNKNOWN = "Unknown or revoked write key."


def key_for(plaintext: str, request: Request) -> ApiKey:
    """Return the active API key `plaintext` names; raise AuthenticationFailed if none does, or Throttled (429)."""
    # A header carries latin-1 only, and a key has no spaces: anything else is unknown.
    if not plaintext or not plaintext.isascii() or any(char.isspace() for char in plaintext):
        raise exceptions.AuthenticationFailed(_UNKNOWN)
    # The one lookup, cache, failure budget and last-used stamp of every /v1/ key.
    api_key = active_key(plaintext, client_address=client_address(request))
    if api_key is None:
        raise exceptions.AuthenticationFailed(_UNKNOWN)
    return api_key


class WriteKeyAuthentication(authentication.BaseAuthentication):
    """Authenticate a Segment call by its write key (an API key of the game).

    In order: HTTP Basic with the key as user name (the password, empty by Segment's
    rule, is ignored), `writeKey` in the JSON body, then `Authorization: Bearer <key>`
    as on every other /v1/ endpoint. A Bearer that is not a key (analytics-python
    sends its OAuth token so, with the writeKey in the body) loses to the body's key.
    """

    def authenticate(self, request: Request) -> tuple[None, ApiKey] | None:
        scheme, _, credentials = authentication.get_authorization_header(request).partition(b" ")
        if scheme.lower() == b"basic":
            return (None, key_for(_basic_user(credentials.strip()), request))
        body = request.data  # a malformed body answers 400 from here, before any key is known
        write_key = body.get("writeKey") if isinstance(body, dict) else None
        if isinstance(write_key, str) and write_key:
            return (None, key_for(write_key, request))
        if scheme.lower() == b"bearer":
            return (None, key_for(credentials.strip().decode("latin-1"), request))
        if request.method == "OPTIONS":
            return None  # a browser's preflight carries no credentials
        raise exceptions.NotAuthenticated(
            "Missing write key: send HTTP Basic auth with the write key as user name and an empty password, "
            "or writeKey in the body."
        )

    def authenticate_header(self, request: Request) -> str:
        # Present so DRF answers 401 (with WWW-Authenticate) rather than 403.
        return 'Basic realm="events"'


class PathWriteKeyAuthentication(authentication.BaseAuthentication):
    """Authenticate the settings request by the write key in its URL, as Segment's CDN does."""

    def authenticate(self, request: Request) -> tuple[None, ApiKey]:
        return (None, key_for(request.parser_context["kwargs"]["write_key"], request))

    def authenticate_header(self, request: Request) -> str:
        return 'Basic realm="events"'


def _basic_user(credentials: bytes) -> str:
    """Return the user name of Basic credentials; "key" without the colon counts too, as Segment allows."""
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise exceptions.AuthenticationFailed("Malformed Basic credentials: expected base64 of <write key>:") from None
    return decoded.partition(":")[0]
