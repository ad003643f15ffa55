"""The one error type of fetching and pinning, shared by the client modules (`debian`, `wheels`)."""


class FetchError(Exception):
    """An external artifact could not be obtained, verified or unpacked; the message is one line."""
