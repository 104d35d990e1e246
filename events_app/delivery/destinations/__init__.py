"""Destinations behind one seam: Kinesis Data Firehose, Kinesis Data Streams."""
