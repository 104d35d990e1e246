"""Tests of erasure and retention."""
