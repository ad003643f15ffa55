"""Errors a user can cause: printed as one line, exit code 1, never a traceback."""


class UserError(Exception):
    """A mistake in the workspace, the command line or the environment."""


class ActionFailed(Exception):
    """An action ran and failed; the scheduler has already reported why."""
