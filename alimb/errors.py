"""The error type for bad user input: reported as one line, exit code 2, no traceback."""


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and how to fix it."""
