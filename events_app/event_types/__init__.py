"""The registry of built-in event types: one module per type, listed here, read by every other part.

Ingest (validation), the record builder, the admin, the dashboard, the warehouse SQL
and the OpenAPI schema all ask this registry what a type needs; none of them names a
type itself. Adding a type is adding its rules to sdk/contract.py, one module here
that builds its `EventType`, and its tests (README, "Adding an event type").
"""

from events_app.event_types import ad_impression, install, progression, purchase, resource, segment_calls, session
from events_app.event_types.base import EventType, WarehouseColumn

__all__ = ["REGISTRY", "EventType", "WarehouseColumn", "builtin", "revenue_types"]

REGISTRY: dict[str, EventType] = {
    event_type.name: event_type
    for module in (install, purchase, session, progression, resource, ad_impression, segment_calls)
    for event_type in module.EVENT_TYPES
}


def builtin(name: str) -> EventType | None:
    """Return the built-in type called `name`, or None for a custom (or invalid) type."""
    return REGISTRY.get(name)


def revenue_types() -> list[str]:
    """Return the names of the types whose events carry revenue (converted to the base currency)."""
    return [name for name, event_type in REGISTRY.items() if event_type.money is not None]
