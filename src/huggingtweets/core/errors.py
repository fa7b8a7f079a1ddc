"""Errors a user can act on.

Anything raised as :class:`HuggingtweetsError` is printed by the CLI as one line
(no traceback) and ends the command with exit code 2.
"""


class HuggingtweetsError(Exception):
    """A problem with the user's input or set-up, described in one actionable line."""
