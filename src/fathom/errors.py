"""Errors a user can act on: they name the file (and row or key) and say what to do."""

from __future__ import annotations

import re
from pathlib import Path

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def one_line(text: str) -> str:
    """`text` without terminal colour codes and with every run of whitespace (newlines too) as one space:
    library messages (torch's unpickling refusal, YAML's caret diagrams) span several lines."""
    return " ".join(ANSI_ESCAPE.sub("", text).split())


class FathomError(Exception):
    """An error the CLI reports as one line, without a traceback."""


class DataError(FathomError):
    """Bad input data: names the file, the place in it (row, key) and what is wrong."""

    def __init__(self, path: str | Path, message: str, where: str | None = None, hint: str | None = None):
        self.path = Path(path)
        self.where = where
        self.hint = hint
        location = f"{self.path}" + (f" ({where})" if where else "")
        text = f"{location}: {one_line(message)}"
        if hint:
            text += f" -- {hint}"
        super().__init__(text)
