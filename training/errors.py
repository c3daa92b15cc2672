"""The one base class of every error the ``gmg`` command prints as one line.

It lives in ``training`` because every other package imports ``training``; each package's
own errors (``ConfigError``, ``AgentLoadError``, ``HookNameError``, ...) derive from it.
"""


class UserError(Exception):
    """A problem the user can fix: a bad value, an unknown name, a corrupt or foreign file.

    ``gmg`` prints its message as one line and exits with status 2; anything else is a bug
    and keeps its traceback.
    """


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (a NaN loss, a changed config on resume, a corrupt checkpoint)."""
