"""Errors a destination raises when a call fails as a whole."""


class DestinationError(Exception):
    """A call to the destination failed as a whole; the cause is chained.

    `permanent` when the destination refused the request itself (retrying cannot help).
    """

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class FirehoseError(DestinationError):
    """A PutRecordBatch call failed as a whole."""


class KinesisError(DestinationError):
    """A Kinesis Data Streams PutRecords call failed as a whole."""
