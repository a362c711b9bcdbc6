"""CSV input read as text, where every failure is a DataError that names the file and the line.

pandas' own failures (an empty file, an unterminated quote, a row with too many fields, bytes that are
not UTF-8) would otherwise surface as tracebacks from deep inside its parser.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from fathom.errors import DataError

PANDAS_LINE = re.compile(r"(?:line|row) (\d+)")


def read_text_csv(path: str | Path, columns: list[str], hint: str | None = None) -> pd.DataFrame:
    """Every cell as a string (no NaN guessing), a UTF-8 BOM and CRLF line ends accepted; the header
    must be exactly `columns`. Adds column `line`: each row's line number in the file (header = 1)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found", hint=hint)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataError(path, "empty file", hint=hint) from None
    except pd.errors.ParserError as err:
        found = PANDAS_LINE.search(str(err))
        raise DataError(path, f"malformed CSV ({str(err).strip()[:160]})",
                        where=f"line {found.group(1)}" if found else None,
                        hint="a quote left open or a row with more fields than the header") from None
    except UnicodeDecodeError as err:
        raise DataError(path, f"not UTF-8 text ({err.reason})", where=f"byte {err.start}") from None
    if list(df.columns) != columns:
        raise DataError(path, f"expected header {','.join(columns)!r}, found {','.join(map(str, df.columns))!r}",
                        where="line 1", hint=hint)
    df["line"] = range(2, len(df) + 2)
    return df
