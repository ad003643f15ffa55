"""The one exception type for user mistakes; the CLI prints it and exits 1."""


class CompileError(Exception):
    """A problem with the user's model, weights or options. The message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
