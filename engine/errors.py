"""Error types, split by whose fault they are: the person's input, the environment, or a bug."""


class LookalikeError(Exception):
    """Base class of every error Lookalike raises on purpose."""


class UserError(LookalikeError):
    """The person asked for something that cannot be done (missing file, empty library...).

    The CLI prints these as one line and exits non-zero, without a traceback.
    """


class EnvironmentProblem(LookalikeError):
    """The machine or the files on it are not as needed (disk full, newer store, no model)."""


class StoreTooNew(EnvironmentProblem):
    """The library was written by a newer Lookalike than this one."""


class DecodeError(LookalikeError):
    """A file could not be turned into pixels; ``reason`` is short and shown to the person."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Cancelled(LookalikeError):
    """The person stopped a long job; what it finished is kept and a new run continues it."""
