"""The proto set's error type, in its own module so every protoset module can raise it."""


class ProtoSetError(Exception):
    """The proto folder cannot be used as given."""
