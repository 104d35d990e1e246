"""`resource`: virtual currency or items gained (source) or spent (sink)."""

from events_app.event_types.base import WarehouseColumn, build_type
from sdk.contract import BUILTIN_TYPES

EVENT_TYPES = [
    build_type(
        "resource",
        rules=BUILTIN_TYPES["resource"],
        description="A virtual currency or item was gained (source) or spent (sink).",
        warehouse_columns=(
            WarehouseColumn("flow", "STRING", "properties:flow"),
            WarehouseColumn("resource", "STRING", "properties:resource"),
            WarehouseColumn("amount", "NUMBER(38, 6)", "properties:amount"),
            WarehouseColumn("item_type", "STRING", "properties:item_type"),
            WarehouseColumn("item_id", "STRING", "properties:item_id"),
        ),
    )
]
