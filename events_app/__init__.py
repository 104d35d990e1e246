"""The player event tracker app: ingestion API, audit log, Firehose delivery, admin."""
