"""The exception tree of daskprs.

Every error a user can act on is one of these, with a message that names the file or key
and says what to do. The CLI maps them to exit codes: bad input is 2, a job that ran and
failed is 1.

* DaskPRSError
  x SpecError (ValueError)            bad spec, override, binding or size           -> exit 2
  x InputError (ValueError)           missing or unreadable input paths, bad MLTable  -> exit 2
  x EntryScriptError (ValueError)     entry script missing, no run(), syntax error    -> exit 2
  x ResumeError (ValueError)          run dir unusable or inputs changed since the run -> exit 2
  x JobFailed (RuntimeError)          the job ran and failed (carries the RunResult) -> exit 1
"""

from __future__ import annotations

from typing import Any


class DaskPRSError(Exception):
    """Base class of every daskprs error."""

    exit_code = 1


class SpecError(DaskPRSError, ValueError):
    """The job spec (or an override or binding in it) is invalid."""

    exit_code = 2


class InputError(DaskPRSError, ValueError):
    """An input path is missing, empty or cannot be read as declared."""

    exit_code = 2


class EntryScriptError(DaskPRSError, ValueError):
    """The entry script is missing, cannot be imported, or has no run()."""

    exit_code = 2


class ResumeError(DaskPRSError, ValueError):
    """A run directory cannot be resumed as asked."""

    exit_code = 2


class JobFailed(DaskPRSError, RuntimeError):
    """The job ran and failed: a threshold was exceeded, no progress, or init failed everywhere."""

    exit_code = 1

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result
