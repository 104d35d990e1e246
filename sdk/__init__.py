"""Python client for the player event tracker's HTTP API."""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "BatchResult",
    "SendResult",
    "TrackerClient",
    "TrackerConnectionError",
    "TrackerError",
    "TrackerHTTPError",
    "TrackerRejectedError",
    "TrackerUnavailableError",
    "__version__",
]

if TYPE_CHECKING:
    from .client import (
        BatchResult,
        SendResult,
        TrackerClient,
        TrackerConnectionError,
        TrackerError,
        TrackerHTTPError,
        TrackerRejectedError,
        TrackerUnavailableError,
    )


def __getattr__(name: str) -> Any:
    # Imported on first use, not here: if this package imported sdk.client,
    # `python -m sdk.client` would find it already loaded, warn, and load it twice.
    if name in __all__:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
