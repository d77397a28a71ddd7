"""Errors that reach the user as one line and an exit code (architecture §1)."""


class KoptError(Exception):
    """A problem the user can fix; `str(e)` is the one line they see."""

    exit_code = 2


class UserInputError(KoptError):
    exit_code = 2


class EnvironmentMissing(KoptError):
    exit_code = 3
