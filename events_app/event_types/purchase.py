"""`purchase`: a store transaction; its receipt counts once per game, its revenue is converted to the base currency."""

from events_app.event_types.base import WarehouseColumn, build_type
from sdk.contract import BUILTIN_TYPES

EVENT_TYPES = [
    build_type(
        "purchase",
        rules=BUILTIN_TYPES["purchase"],
        description="A real-money purchase; a replayed transaction_id is a duplicate.",
        unique_property="transaction_id",
        warehouse_columns=(
            WarehouseColumn("transaction_id", "STRING", "properties:transaction_id"),
            WarehouseColumn("product_id", "STRING", "properties:product_id"),
            WarehouseColumn("store", "STRING", "properties:store"),
        ),
    )
]
