"""The v1 HTTP API: views, key authentication and rate limits, body parsing, errors, OpenAPI."""
