"""create_api_key, deliver_events and ensure_firehose."""
