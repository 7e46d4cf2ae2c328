"""The project's exceptions: user-facing errors carry a one-line message that says what to fix."""

from __future__ import annotations


class AdvisorError(Exception):
    """Base class for errors the CLI prints as one line and exits non-zero on."""


class InputError(AdvisorError):
    """Bad input data: names the file, the line (or JSON record), the field and the bad value."""

    def __init__(self, file: str, where: str, field: str, value: object, reason: str) -> None:
        self.file, self.where, self.field, self.value, self.reason = file, where, field, value, reason
        super().__init__(f"{file}:{where}: field '{field}': {reason} (got {value!r})")


class NotFoundError(AdvisorError):
    """A market, file or database that the request names does not exist."""
