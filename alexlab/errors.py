"""The errors a user can cause, as one family: raised where the error is found, with one line that names the cause
and what to do. `alexlab` (cli.py) prints that line and exits with the error's `exit_code` (2: the command was
wrong; 1: the command was right but its runs did not finish). Any other exception is a bug and keeps its traceback.

Each class also derives from the built-in exception that code outside alexlab expects for its kind (a missing file
is a FileNotFoundError), so `except FileNotFoundError` and the like keep working.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix; its message is one line."""

    exit_code = 2


class BadValue(UserError, ValueError):
    """A value on the command line or in the config that cannot be used."""


class NotFound(UserError, FileNotFoundError):
    """A file or directory the command needs is not there."""


class BadFile(UserError, ValueError):
    """A file that is there but cannot be used: a truncated or unsafe checkpoint, a record that is not one."""


class DirectoryTaken(UserError, FileExistsError):
    """A run or sweep directory holds something else (another run, another sweep): it is left as it is."""


class DirectoryBusy(UserError):
    """Another alexlab process is running the job in this directory right now."""


class CannotWrite(UserError, OSError):
    """A file could not be written: a full disk, a read-only directory, no permission. CannotWrite(errno, line)."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()  # the line alone, without OSError's "[Errno 28]"


class OutOfMemory(UserError, RuntimeError):
    """A run ran out of GPU or CPU memory; the message says at which batch size and what to try."""


class Diverged(UserError, FloatingPointError):
    """The training loss became NaN or infinite: the run is recorded as `diverged` (not `failed`)."""

    exit_code = 1


class SweepFailed(UserError, RuntimeError):
    """No run of a sweep finished: nothing to compare. The message says why the first one did not."""

    exit_code = 1
