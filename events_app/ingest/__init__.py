"""Ingestion: validate events, screen duplicates and erased players, store the rest."""
