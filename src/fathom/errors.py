"""Errors a user can act on: they name the file (and row or key) and say what to do."""

from __future__ import annotations

from pathlib import Path


class FathomError(Exception):
    """An error the CLI reports as one line, without a traceback."""


class DataError(FathomError):
    """Bad input data: names the file, the place in it (row, key) and what is wrong."""

    def __init__(self, path: str | Path, message: str, where: str | None = None, hint: str | None = None):
        self.path = Path(path)
        self.where = where
        self.hint = hint
        location = f"{self.path}" + (f" ({where})" if where else "")
        text = f"{location}: {message}"
        if hint:
            text += f" -- {hint}"
        super().__init__(text)
