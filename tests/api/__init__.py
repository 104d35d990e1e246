"""Tests of the v1 API."""
