"""The settings document Segment's SDKs fetch at start-up (`GET /v1/projects/{writeKey}/settings`).

What they read from it (their sources: analytics-swift Settings.swift and
SegmentDestination.swift, analytics-kotlin Settings.kt and SegmentDestination.kt,
analytics-csharp Settings.cs and SegmentDestination.cs, analytics-next's
LegacySettings and segmentio plugin):

- `integrations["Segment.io"].apiHost`: the host and path they send to, without a
  scheme (`host/v1`; they append `/b`, analytics.js `/t`, `/i`...). It overrides the
  apiHost the app was built with, so it must name this server.
- `integrations["Segment.io"].apiKey`: required by analytics-kotlin's decoder.
- `integrations["Segment.io"].protocol`: analytics.js only (the mobile SDKs always use https).
- `plan`, `edgeFunction`, `middlewareSettings`, `metrics`: objects analytics-kotlin
  decodes into non-null fields, so they must be objects, never null;
  `metrics.sampleRate` 0 keeps the SDKs' own telemetry from reporting to Segment.
- No other integration: no device-mode destination is loaded.
"""


def sdk_settings(*, write_key: str, api_host: str, protocol: str) -> dict:
    """Return the settings that make Segment's SDKs send every call to `api_host` and nowhere else."""
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": api_host,
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": False,
            }
        },
        "plan": {
            "track": {"__default": {"enabled": True, "integrations": {}}},
            "identify": {"__default": {"enabled": True}},
            "group": {"__default": {"enabled": True}},
        },
        "edgeFunction": {},
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0.0},
        "analyticsNextEnabled": True,
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }
