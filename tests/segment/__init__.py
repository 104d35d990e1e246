"""Tests of the Segment-compatible endpoints."""
