"""API key authentication: `Authorization: Bearer <key>` names the game of every event.

A key is looked up by its hash, remembered by each process for a few seconds when
valid and for UNKNOWN_KEY_CACHE_SECONDS when not, so a client repeating a key costs
no query either way. Each client address may fail with keys needing a lookup
EVENTS_AUTH_FAILURE_RATE times per window (counted in the shared cache); beyond, its
unknown keys are answered 429 with Retry-After without a query until the window
ends. Keys this process has seen valid are still looked up, so a flood of random
keys from behind the same proxy never locks out the clients whose keys work.
"""

import hmac
import logging
import threading
import time
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from events_app import conf, metrics
from events_app.api.throttling import count_in_window, parse_rate
from events_app.logs import LogThrottle
from events_app.models import ApiKey

logger = logging.getLogger(__name__)

# Writing last_used_at on every request would turn each read into a write; once a
# minute is precise enough for an operator deciding whether a key is still in use.
LAST_USED_RESOLUTION = timedelta(minutes=1)

# Known keys are remembered in each process for a few seconds, saving a query on
# every request; a revoked key therefore stops working within this time everywhere
# (at once in the process that revoked it).
KEY_CACHE_SECONDS = 5.0
# Unknown keys are remembered longer: keys are random, so a digest unknown now never
# names a key later, and an old client build sending a revoked key costs one query
# per process per this many seconds.
UNKNOWN_KEY_CACHE_SECONDS = 30.0
_CACHE_MAX_ENTRIES = 10_000
# From a blocked address, a key is looked up only if its digest is among the active
# keys' digests, read in one query at most this often per process while any address
# is blocked: valid keys keep working from behind a shared address (a NAT, a router)
# even in a process that never saw them, and random keys cost no query each.
ACTIVE_DIGESTS_SECONDS = 60.0
# An entry outlives its expiry (until revoked or the cache is full): an expired one
# still says the digest was valid here once, so it is looked up from a blocked address.
_key_cache: dict[str, tuple[float, ApiKey]] = {}
_active_digests: list = [0.0, frozenset()]  # [time.time() it is read again at, the digests]
_unknown_keys: dict[str, float] = {}  # digest -> time.time() it is forgotten at
_blocked: dict[str, float] = {}  # client address -> time.time() its window ends at
_lock = threading.Lock()
_unknown_log = LogThrottle(60.0)
_blocked_log = LogThrottle(60.0)

UNKNOWN = "Unknown or revoked API key."


def forget_cached_key(key_hash: str) -> None:
    """Drop a key from this process's cache, e.g. right after revoking it."""
    with _lock:
        _key_cache.pop(key_hash, None)


def forget_failures() -> None:
    """Forget the unknown keys and blocked addresses this process remembers (tests)."""
    with _lock:
        _unknown_keys.clear()
        _blocked.clear()
        _active_digests[:] = [0.0, frozenset()]
    _unknown_log.reset()
    _blocked_log.reset()


def _remember(table: dict, key: str, value: object) -> None:
    with _lock:
        if len(table) >= _CACHE_MAX_ENTRIES:
            table.clear()
        table[key] = value


def active_key(plaintext: str, *, client_address: str = "") -> ApiKey | None:
    """Return the active API key `plaintext` names, stamping its last use; None if it names none.

    With `client_address` (REMOTE_ADDR), an unknown key counts against the address's
    budget of failures; raises Throttled (429) once the address is over it.
    """
    digest = ApiKey.hash(plaintext)
    now = time.time()  # wall-clock expiries, so that tests move them with time-machine
    api_key = _find_active_key(digest, client_address=client_address, now=now)
    # The lookup is by hash, so timing reveals nothing about the key; compare anyway.
    if api_key is None or not hmac.compare_digest(api_key.key_hash, digest):
        return None
    stamp = timezone.now()
    if api_key.last_used_at is None or stamp - api_key.last_used_at > LAST_USED_RESOLUTION:
        api_key.last_used_at = stamp
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=stamp)
    return api_key


def _find_active_key(digest: str, *, client_address: str, now: float) -> ApiKey | None:
    cached = _key_cache.get(digest)
    if cached is not None and cached[0] > now and cached[1].works_at(timezone.now()):
        return cached[1]
    blocked_until = _blocked.get(client_address, 0.0) if client_address else 0.0
    if cached is None and blocked_until > now and not _is_active_digest(digest, now=now):
        _refuse_throttled(wait=blocked_until - now)
    if _unknown_keys.get(digest, 0.0) > now:
        _note_unknown()  # a repeat: answered from memory, not counted
        return None
    api_key = ApiKey.objects.select_related("game").filter(ApiKey.working_at(timezone.now()), key_hash=digest).first()
    if api_key is not None:
        _remember(_key_cache, digest, (now + KEY_CACHE_SECONDS, api_key))
        return api_key
    _remember(_unknown_keys, digest, now + UNKNOWN_KEY_CACHE_SECONDS)
    forget_cached_key(digest)
    _count_failure(client_address, now=now)
    _note_unknown()
    return None


def _is_active_digest(digest: str, *, now: float) -> bool:
    """Return True if `digest` is an active key's, from this process's copy of the list (refreshed once a minute)."""
    if _active_digests[0] <= now:
        working = ApiKey.objects.filter(ApiKey.working_at(timezone.now()))
        digests = frozenset(working.values_list("key_hash", flat=True))
        with _lock:
            _active_digests[:] = [now + ACTIVE_DIGESTS_SECONDS, digests]
    return digest in _active_digests[1]


def _count_failure(client_address: str, *, now: float) -> None:
    """Count a failed lookup against the address; raise Throttled if that puts it over its budget."""
    limit = parse_rate(conf.auth_failure_rate())
    if limit is None or not client_address:
        return
    allowed, period = limit
    failures, wait = count_in_window(f"events:authfail:{client_address}", period=period)
    if failures is None or failures <= allowed:
        return
    _remember(_blocked, client_address, now + wait)
    held = _blocked_log.due()
    if held is not None:  # many addresses at once (a botnet) still make one line a minute
        logger.warning(
            "%s failed authentication %d times within %d s: its unknown keys are answered 429 for %.0f s"
            " (%d more addresses blocked since the last such line)",
            client_address,
            failures,
            period,
            wait,
            held,
        )
    _refuse_throttled(wait=wait)


def _note_unknown() -> None:
    """Count and (once a minute) log a refused unknown key; the caller answers 401."""
    metrics.auth_failure(401)
    held = _unknown_log.due()
    if held is not None:
        logger.info("rejected an unknown or revoked API key (%d more since the last such line)", held)


def _refuse_throttled(*, wait: float) -> None:
    metrics.auth_failure(429)
    raise exceptions.Throttled(
        wait=wait, detail="Too many requests with unknown API keys from this address; retry after Retry-After."
    )


def client_address(request) -> str:
    """Return the address failed authentications are counted by: REMOTE_ADDR (behind a proxy, the proxy's)."""
    return request.META.get("REMOTE_ADDR", "")


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
            raise exceptions.AuthenticationFailed(UNKNOWN) from None
        api_key = active_key(plaintext, client_address=client_address(request))
        if api_key is None:
            raise exceptions.AuthenticationFailed(UNKNOWN)
        return (None, api_key)

    def authenticate_header(self, request) -> str:
        # Present so DRF answers 401 (with WWW-Authenticate) rather than 403.
        return self.keyword
