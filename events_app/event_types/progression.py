"""`progression`: a player started, completed or failed a level (GameAnalytics' progression event)."""

from events_app.event_types.base import WarehouseColumn, build_type
from sdk.contract import BUILTIN_TYPES

EVENT_TYPES = [
    build_type(
        "progression",
        rules=BUILTIN_TYPES["progression"],
        description="A level was started, completed or failed.",
        warehouse_columns=(
            WarehouseColumn("status", "STRING", "properties:status"),
            WarehouseColumn("level", "STRING", "properties:level"),
            WarehouseColumn("score", "INTEGER", "properties:score"),
            WarehouseColumn("attempt", "INTEGER", "properties:attempt"),
        ),
    )
]
