"""Tests of cross-package suites: real processes, hostile input, README, deployment."""
