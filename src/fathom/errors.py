"""Errors a user can act on: they name the file (and row or key) and say what to do."""

from __future__ import annotations

import errno
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


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def checked_name(name: str, what: str, source: str | Path = "command line") -> str:
    """`name` when it is one plain file or folder name (letters, digits, '.', '_', '+', '-'; no separator, no
    '..', not hidden), so that a path built from it stays inside its folder; else a DataError naming `what`."""
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        raise DataError(source, f"{what} {name!r} is not a plain name", where=what,
                        hint="use letters, digits, '.', '_', '+' and '-' (no '/' or '..'): it names a file or folder "
                             "inside runs/ or submissions/")
    return name


OS_HINTS = {
    errno.ENOSPC: "free space on that disk, or point the output (--out, --runs, FATHOM_SCRATCH) at another one",
    errno.EDQUOT: "free space on that disk, or point the output (--out, --runs, FATHOM_SCRATCH) at another one",
    errno.ENOTDIR: "a part of that path is a file, not a folder: choose another path",
    errno.EISDIR: "that path is a folder: give a file path",
    errno.EEXIST: "something is already there: move it away or choose another path",
    errno.EACCES: "no permission: choose a folder you can write to",
    errno.EPERM: "no permission: choose a folder you can write to",
    errno.EROFS: "that disk is read-only (on Kaggle /kaggle/input is): write under /kaggle/working or /kaggle/temp",
}


def os_error_line(err: OSError) -> str:
    """An OS error as one line: the path, what went wrong and, for the common ones, what to do."""
    where = f"{err.filename}: " if err.filename else ""
    text = f"{where}{err.strerror or one_line(str(err))}"
    hint = OS_HINTS.get(err.errno)
    return one_line(f"{text} -- {hint}" if hint else text)
