"""The one exception type a user can cause, with a message that says how to fix it."""


class EducloudError(Exception):
    """An error the user can act on: bad input, missing tool, unreachable server.

    The CLI prints its message on one line and exits non-zero; never a traceback.
    """
