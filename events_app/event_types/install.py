"""`install`: a player installed the game; where from (store, campaign, country) and on what device."""

from events_app.event_types.base import WarehouseColumn, build_type
from sdk.contract import BUILTIN_TYPES

EVENT_TYPES = [
    build_type(
        "install",
        rules=BUILTIN_TYPES["install"],
        description="A player installed the game.",
        warehouse_columns=(
            WarehouseColumn("store", "STRING", "properties:store"),
            WarehouseColumn("campaign", "STRING", "properties:campaign"),
            WarehouseColumn("country", "STRING", "properties:country"),
            WarehouseColumn("device_model", "STRING", "properties:device_model"),
            WarehouseColumn("os_version", "STRING", "properties:os_version"),
        ),
    )
]
