"""Tests of event types and custom schemas."""
