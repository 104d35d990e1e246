"""Delivery: pack stored events into records and send them to the destination, with retries."""
