"""Tests of operations: metrics, logs, schedule, Sentry, commands."""
