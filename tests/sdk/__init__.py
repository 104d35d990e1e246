"""Tests of the Python SDK (no Django)."""
