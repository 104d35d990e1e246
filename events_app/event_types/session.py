"""`session_start` and `session_end`: a play session, identified by the top-level `session_id`."""

from events_app.event_types.base import WarehouseColumn, build_type
from sdk.contract import BUILTIN_TYPES

EVENT_TYPES = [
    build_type(
        "session_start",
        rules=BUILTIN_TYPES["session_start"],
        description="A play session began (session_id required).",
    ),
    build_type(
        "session_end",
        rules=BUILTIN_TYPES["session_end"],
        description="A play session ended after duration_ms (session_id required).",
        warehouse_columns=(WarehouseColumn("duration_ms", "INTEGER", "properties:duration_ms"),),
    ),
]
