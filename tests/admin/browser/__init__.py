"""Tests of the admin in a real browser."""
