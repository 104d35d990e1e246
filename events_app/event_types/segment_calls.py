"""`identify`, `page`, `screen`, `group`, `alias`: Segment's calls, their traits or properties kept free-form."""

from events_app.event_types.base import build_type
from sdk.contract import BUILTIN_TYPES

_DESCRIPTIONS = {
    "identify": "Who the player is (Segment identify): traits in properties.",
    "page": "A web page view (Segment page).",
    "screen": "A screen view in an app (Segment screen).",
    "group": "The player joined a group, team or guild (Segment group).",
    "alias": "The player's ids were merged (Segment alias).",
}

EVENT_TYPES = [
    build_type(name, rules=BUILTIN_TYPES[name], description=description) for name, description in _DESCRIPTIONS.items()
]
