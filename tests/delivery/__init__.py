"""Tests of delivery and destinations."""
