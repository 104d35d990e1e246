"""The test suite: one package per events_app package, plus sdk, devtools, system and support."""
