"""playertrack: the player event tracker's Python SDK, a background Tracker and a synchronous TrackerClient.

Installed, the package is `playertrack`; inside the tracker's repository this folder is
imported as `sdk`. Its modules import each other relatively, so both names work.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.5.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "BatchResult": "client",
    "EventRejectedError": "client",
    "EventSetAsideError": "client",
    "InsecureEndpointWarning": "client",
    "SendResult": "client",
    "TrackerAuthError": "client",
    "TrackerBadResponseError": "client",
    "TrackerClient": "client",
    "TrackerConnectionError": "client",
    "TrackerError": "client",
    "TrackerHTTPError": "client",
    "TrackerRejectedError": "client",
    "TrackerUnavailableError": "client",
    "RetryPolicy": "retry",
    "DROP_NEWEST": "tracker",
    "DROP_OLDEST": "tracker",
    "Tracker": "tracker",
    "TrackerStats": "tracker",
    "InvalidEventError": "validation",
    "SetAsideEvent": "spool",
    "SpoolPermissionWarning": "spool",
    "default_spool_path": "spool",
    "validate_event": "validation",
}

__all__ = [
    "DROP_NEWEST",
    "DROP_OLDEST",
    "BatchResult",
    "EventRejectedError",
    "EventSetAsideError",
    "InsecureEndpointWarning",
    "InvalidEventError",
    "RetryPolicy",
    "SendResult",
    "SetAsideEvent",
    "SpoolPermissionWarning",
    "Tracker",
    "TrackerAuthError",
    "TrackerBadResponseError",
    "TrackerClient",
    "TrackerConnectionError",
    "TrackerError",
    "TrackerHTTPError",
    "TrackerRejectedError",
    "TrackerStats",
    "TrackerUnavailableError",
    "__version__",
    "default_spool_path",
    "validate_event",
]

if TYPE_CHECKING:
    from .client import (
        BatchResult,
        EventRejectedError,
        EventSetAsideError,
        InsecureEndpointWarning,
        SendResult,
        TrackerAuthError,
        TrackerBadResponseError,
        TrackerClient,
        TrackerConnectionError,
        TrackerError,
        TrackerHTTPError,
        TrackerRejectedError,
        TrackerUnavailableError,
    )
    from .retry import RetryPolicy
    from .spool import SetAsideEvent, SpoolPermissionWarning, default_spool_path
    from .tracker import DROP_NEWEST, DROP_OLDEST, Tracker, TrackerStats
    from .validation import InvalidEventError, validate_event


def __getattr__(name: str) -> Any:
    # Imported on first use, not here: if this package imported sdk.client,
    # `python -m sdk.client` (or playertrack.client) would find it already loaded, warn, and load it twice.
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
