"""Segment-compatible ingest: Segment's HTTP Tracking API mapped onto the one native ingest path (docs/segment.md)."""
