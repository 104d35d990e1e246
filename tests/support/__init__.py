"""Test helpers the test packages share."""
