"""Error types, split by whose fault they are: the person's input, the environment, or a bug."""

import errno


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


class DiskFull(EnvironmentProblem):
    """A write failed for lack of space; what was committed before it is kept."""


class LibraryDamaged(EnvironmentProblem):
    """The catalog or an array does not hold what was written (disk fault, bad sync, tampering)."""


class UnsafeLibrary(EnvironmentProblem):
    """The library folder holds something Lookalike never writes (a link, a bad id): refused, never followed."""


def environment_problem(exc: OSError, doing: str) -> EnvironmentProblem:
    """The typed error for an OSError met while ``doing`` something to the library's files.

    ``doing`` reads after "cannot", e.g. "write codes/0001.u64".
    """
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"cannot {doing}: the disk is full (free some space and run it again; "
                        "nothing committed before is lost)")
    if exc.errno == errno.ELOOP:
        return UnsafeLibrary(f"cannot {doing}: it is a symbolic link, and a library's own files never are "
                             "(was the library folder made by hand or tampered with?)")
    return EnvironmentProblem(f"cannot {doing}: {exc.strerror or exc}")
