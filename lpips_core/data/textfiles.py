"""Users' text files (CSV tables, JSON, one-number judgment files), read defensively.

Every reader here checks the file's size before reading it, decodes UTF-8 (a leading
byte-order mark, Excel's default for "CSV UTF-8", is accepted and dropped), and turns
what can go wrong into one line that names the file, the line or field, and the fix,
raised as the caller's own error class (``DataError``, ``MOSDataError``, ...):

* bytes that are not UTF-8 (a latin-1 or cp1252 export): the line and the byte;
* a CSV row with more fields than the header (an unquoted comma), or fewer;
* JSON that does not parse, or nests deeper than Python's parser can follow.

Example:
    >>> header, rows = read_csv_rows("scores.csv", MOSDataError)  # doctest: +SKIP
    >>> bad = [f"line {r.line}: {r.problem}" for r in rows if r.problem]  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Largest table read into memory (a judgment table of a million rows is ~100 MB).
MAX_TABLE_BYTES = 512 * 2**20
#: Largest one-number file (``sample_XXX_judgment.txt``).
MAX_SMALL_FILE_BYTES = 4096

_UTF8_FIX = "save it as UTF-8 (Excel: 'CSV UTF-8'; or `iconv -f latin1 -t utf-8 in.csv > out.csv`)"


def read_text(path: str | os.PathLike, error: type[Exception] = ValueError, max_bytes: int = MAX_TABLE_BYTES) -> str:
    """The text of a UTF-8 file (a leading BOM dropped), its size checked before reading.

    Raises:
        error: naming the file: missing, larger than ``max_bytes``, or not UTF-8 (with the
            line and the offending byte).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(
                f"{path}: {size:,} bytes, more than the {max_bytes:,} a table here may have; is this the right file?"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(f"{path}: line {line}: byte 0x{data[exc.start]:02x} is not UTF-8 text; {_UTF8_FIX}") from None


@dataclass(frozen=True)
class CsvRow:
    """One data row of a CSV table.

    Attributes:
        line: its line number in the file (the header is line 1).
        values: {column: value}, stripped; a missing field reads as ''.
        problem: None, or why the row does not fit the header (more or fewer fields), with the fix.
    """

    line: int
    values: dict[str, str]
    problem: str | None = None


def read_csv_rows(path: str | os.PathLike, error: type[Exception] = ValueError) -> tuple[list[str], list[CsvRow]]:
    """A CSV table with a header line: (header, rows); blank lines are skipped.

    A row with more or fewer fields than the header is returned with its ``problem`` set
    (the caller lists or skips it); extra fields are not in its ``values``.

    Raises:
        error: naming the file (see :func:`read_text`) or the line (malformed CSV quoting).
    """
    path = Path(path)
    text = read_text(path, error)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
        rows = []
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            problem = None
            if len(fields) != len(header):
                more = "more" if len(fields) > len(header) else "fewer"
                problem = (
                    f"{len(fields)} fields, {more} than the header's {len(header)} ({','.join(header)}); "
                    f'quote values that contain commas ("a,b") and give every row one value per column'
                )
            values = [f.strip() for f in fields[: len(header)]] + [""] * max(0, len(header) - len(fields))
            rows.append(CsvRow(reader.line_num, dict(zip(header, values)), problem))
    except csv.Error as exc:
        raise error(f"{path}: line {reader.line_num}: not a readable CSV row ({exc})") from None
    return header, rows


def read_json(path: str | os.PathLike, error: type[Exception] = ValueError) -> Any:
    """A JSON file's value.

    Raises:
        error: naming the file: not UTF-8 (see :func:`read_text`), not valid JSON (line and
            column), or nested too deeply to read.
    """
    path = Path(path)
    text = read_text(path, error)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise error(f"{path}: JSON nested too deeply to read; a table is a list of flat objects") from None


def read_small_text(path: str | os.PathLike, error: type[Exception] = ValueError) -> str:
    """A short UTF-8 file (one number, one word), stripped; see :func:`read_text`."""
    return read_text(path, error, MAX_SMALL_FILE_BYTES).strip()
