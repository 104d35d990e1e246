"""Tests of currencies and rates."""
