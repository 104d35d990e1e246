"""`ad_impression`: an ad was shown; its optional revenue is converted to the base currency like a purchase's."""

from events_app.event_types.base import WarehouseColumn, build_type
from sdk.contract import BUILTIN_TYPES

EVENT_TYPES = [
    build_type(
        "ad_impression",
        rules=BUILTIN_TYPES["ad_impression"],
        description="An ad was shown; revenue (with its currency) is optional.",
        warehouse_columns=(
            WarehouseColumn("ad_network", "STRING", "properties:ad_network"),
            WarehouseColumn("ad_format", "STRING", "properties:ad_format"),
            WarehouseColumn("ad_unit", "STRING", "properties:ad_unit"),
        ),
    )
]
