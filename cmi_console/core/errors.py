"""Error types that carry the documented CLI exit code (DESIGN.md, Exit codes)."""

from __future__ import annotations


class CmiError(Exception):
    """Base error: a one-line message the surfaces print as is."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CheckFailed(CmiError):
    """A check or gate failed (exit 1)."""

    exit_code = 1


class BadInput(CmiError):
    """Bad input or usage (exit 2). Nothing was written."""

    exit_code = 2


class NotFound(BadInput):
    """A named thing does not exist (exit 2)."""


class SchemaOutdated(BadInput):
    """The database schema is older than this program (exit 2)."""


class Denied(CmiError):
    """Role, segregation of duties, or signature refused (exit 3)."""

    exit_code = 3


class IntegrityError(CmiError):
    """Tampered log, artifact hash mismatch (exit 4)."""

    exit_code = 4


class Unavailable(CmiError):
    """The database could not be reached or used just now: it is down, the
    connection dropped, or a lock outlasted the wait (exit 75, sysexits'
    EX_TEMPFAIL: try again). Nothing was written."""

    exit_code = 75


FOREIGN_MAX = 300  # characters of a library's reason shown


def first_line(exc: BaseException) -> str:
    """A library's reason in one line: the first line of its message, or its
    type when it gave none (pandas and scikit-learn write several lines)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    # scikit-learn lists every class or value it objects to: kept to a line
    return line if len(line) <= FOREIGN_MAX else line[: FOREIGN_MAX - 1] + "…"
