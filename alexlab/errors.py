"""The errors a user can cause, as one family: raised where the error is found, with one line that names the cause
and what to do. `alexlab` (cli.py) prints that line and exits with the error's `exit_code` (2: the command was
wrong; 1: the command was right but its runs did not finish). Any other exception is a bug and keeps its traceback.

Each class also derives from the built-in exception that code outside alexlab expects for its kind (a missing file
is a FileNotFoundError), so `except FileNotFoundError` and the like keep working.
"""

from __future__ import annotations

import argparse
import sys

# Exit status of a run stopped by a signal after saving its checkpoint (sysexits' EX_TEMPFAIL, "try again"): the same
# command with resume=true goes on from it.
EXIT_INTERRUPTED = 75


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


class ArgumentParser(argparse.ArgumentParser):
    """argparse for alexlab's own commands (report, dashboard): a bad argument is a BadValue, one line, not
    argparse's usage block and exit."""

    def error(self, message: str):
        raise BadValue(f"{self.prog}: {message} ({self.prog} --help)")


def first_line(exc: BaseException, typed: bool = False) -> str:
    """An exception in one line: the first non-blank line of its message, or its type's name without one; with
    typed=True after its type's name ("RuntimeError: boom"), where the line stands alone (an Optuna trial's error)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}" if typed else lines[0]


def out_of_memory_line(exc: BaseException, batch_size: int) -> str | None:
    """One line for an out-of-memory error (CUDA's torch.OutOfMemoryError or the CPU allocator's), else None."""
    text = str(exc).strip()
    torch = sys.modules.get("torch")  # an out-of-memory error comes from torch, so torch is imported then
    if torch is not None and isinstance(exc, torch.OutOfMemoryError):
        what = text.splitlines()[0] if text else "CUDA out of memory"
    elif isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in text:
        what = "CPU: " + text[text.index("DefaultCPUAllocator") :].splitlines()[0]
    else:
        return None
    return (
        f"out of memory at data.batch_size={batch_size} ({what}): try data.batch_size={max(1, batch_size // 2)} "
        "or trainer.precision=bf16-mixed"
    )
