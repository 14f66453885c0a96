"""The one exception type for mistakes a user can fix.

A ``UserError`` carries a single paragraph that says what went wrong and which setting to change.
The CLI prints it without a traceback and exits with status 2.
"""


class UserError(Exception):
    """A problem with the user's settings, paths, data or environment (not a bug in specbench)."""
