"""The one exception type the ``gmg`` CLI turns into a one-line message."""


class GmgError(RuntimeError):
    """A user-facing problem: bad input, a missing stage, an incompatible file."""
