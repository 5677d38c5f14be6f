"""Result rows that survive a kill: append-only part files, read back without their torn last line.

A long ``lpips-core dirs`` run appends each finished batch to a *part file*
(``<output>.part<rank>``), flushed and fsynced at the batch boundary. A run killed
at any instant (SIGKILL, a pre-empted node) leaves every complete line intact and
at most one torn last line, which :func:`read_part` drops. ``--resume`` reads the
part files, computes only the missing rows, and the final CSV is written in one
piece by :func:`lpips_core.files.write_csv` (atomic), after which the parts are removed.

Part file format: one line ``# lpips-core part <json settings>``, then ``key,value``
lines (``csv`` quoting, ``\\n`` line ends). The settings line makes a resume with
other settings (another net, batch size, ...) an error instead of a mixed table.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

MAGIC = "# lpips-core part "


class ResumeError(ValueError):
    """A part file or earlier output does not belong to this run's settings."""


def part_path(output: str | os.PathLike, rank: int) -> Path:
    """Where rank ``rank`` appends its rows for ``output``."""
    output = Path(output)
    return output.with_name(f"{output.name}.part{rank}")


def part_files(output: str | os.PathLike) -> list[Path]:
    """Every part file of ``output`` (of any rank, from any earlier world size), by rank."""
    output = Path(output)
    found = []
    for p in output.parent.glob(f"{output.name}.part*"):
        suffix = p.name[len(output.name) + 5 :]
        if suffix.isdigit():
            found.append((int(suffix), p))
    return [p for _, p in sorted(found)]


def _settings_line(settings: Mapping) -> str:
    return MAGIC + json.dumps(dict(settings), sort_keys=True) + "\n"


def _check_settings(path: Path, line: str, settings: Mapping) -> None:
    try:
        found = json.loads(line[len(MAGIC) :]) if line.startswith(MAGIC) else None
    except json.JSONDecodeError:
        found = None
    if found is None:
        raise ResumeError(f"{path}: not an lpips-core part file (first line {line[:40]!r}); delete it")
    check_same_settings(path, found, settings)


def settings_difference(found: Mapping, settings: Mapping) -> str:
    """'' when ``found`` equals ``settings`` (as JSON), else 'k=a there, b now, ...'."""
    want = json.loads(json.dumps(dict(settings), sort_keys=True))
    found = dict(found)
    diff = sorted(k for k in set(found) | set(want) if found.get(k) != want.get(k))
    return ", ".join(f"{k}={found.get(k)!r} there, {want.get(k)!r} now" for k in diff)


def check_same_settings(path: Path, found: Mapping, settings: Mapping) -> None:
    """Raise :class:`ResumeError` naming every setting in which ``found`` (read from ``path``) differs."""
    parts = settings_difference(found, settings)
    if parts:
        raise ResumeError(
            f"{path} was written with other settings ({parts}); resume with the same "
            f"options, or run without --resume to start over"
        )


def part_settings(path: str | os.PathLike) -> dict | None:
    """The settings on a part file's first line (None: no complete first line, or not a part file)."""
    text = _decode(Path(path).read_bytes())
    first = text.find("\n")
    if first < 0 or not text.startswith(MAGIC):
        return None
    try:
        found = json.loads(text[len(MAGIC) : first])
    except json.JSONDecodeError:
        return None
    return found if isinstance(found, dict) else None


def _row_problem(fields: list[str]) -> str | None:
    """None when ``fields`` is a ``key,distance`` row with a finite distance >= 0, else what is wrong."""
    if len(fields) != 2:
        return f"{len(fields)} fields, expected 2 (path,distance)"
    try:
        value = float(fields[1])
    except ValueError:
        return f"distance {fields[1]!r} is not a number"
    if not math.isfinite(value) or value < 0:
        return f"distance {fields[1]!r} is not a finite distance >= 0"
    return None


def _complete_rows(text: str, path: Path | None = None, first_line: int = 2) -> tuple[list[tuple[str, str]], int]:
    """Rows of the complete lines of ``text`` and the number of characters they span.

    Only the text after the last newline can be a kill's torn write: it is ignored. Every
    line before it was written whole, so one that is not a ``key,distance`` row with a
    finite distance >= 0 means the file was damaged or edited, and the part is refused:
    resuming from it would put that value in the table.

    Raises:
        ResumeError: naming ``path`` and the line (``first_line`` is the number of the first).
    """
    rows, used, line_no = [], 0, first_line
    while True:
        end = text.find("\n", used)
        if end < 0:
            break
        line = text[used:end]
        try:
            fields = next(csv.reader([line]), [])
            problem = _row_problem(fields)
        except csv.Error as exc:
            problem = f"not a CSV row ({exc})"
        if problem:
            raise ResumeError(
                f"{path}: line {line_no}: {line[:60]!r}: {problem}; the part file is damaged. "
                f"Delete it to recompute its rows (or correct that line), then resume"
            )
        rows.append((fields[0], fields[1]))
        used, line_no = end + 1, line_no + 1
    return rows, used


def _decode(data: bytes) -> str:
    """Part files hold file names as the file system gave them: undecodable bytes round-trip."""
    return data.decode("utf-8", errors="surrogateescape")


def read_part(path: str | os.PathLike, settings: Mapping | None) -> dict[str, str]:
    """{key: value text} of the complete rows of a part file (a torn last line is dropped).

    Args:
        settings: the run's settings; None reads the rows whatever settings wrote them.
    Raises:
        ResumeError: the file was written with other ``settings``, or a complete line is not
            a finite distance (naming the line).
    """
    path = Path(path)
    text = _decode(path.read_bytes())
    first = text.find("\n")
    if first < 0:  # killed while writing the settings line: nothing was computed
        return {}
    if settings is not None:
        _check_settings(path, text[: first + 1], settings)
    rows, _ = _complete_rows(text[first + 1 :], path)
    return dict(rows)


def finished_rows(output: str | os.PathLike) -> tuple[int, list[Path]]:
    """How many complete rows the part files of ``output`` hold, whatever settings wrote them, and the files."""
    parts = part_files(output)
    n = 0
    for part in parts:
        text = _decode(part.read_bytes())
        first = text.find("\n")
        if first >= 0:
            n += text[first + 1 :].count("\n")
    return n, parts


def read_table(path: str | os.PathLike, header: tuple[str, str]) -> dict[str, str]:
    """{key: value text} of a finished two-column CSV written by an earlier run.

    Raises:
        ResumeError: its header is not ``header``.
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        reader = csv.reader(f)
        first = next(reader, None)
        if first is None or tuple(first[:2]) != tuple(header):
            raise ResumeError(
                f"{path}: header {first} is not {list(header)}; not a table of this command "
                f"(choose another --output or delete it)"
            )
        rows = {}
        for r in reader:
            problem = _row_problem(r)
            if problem:
                raise ResumeError(
                    f"{path}: line {reader.line_num}: {problem}; the table was damaged or edited: "
                    f"run without --resume to recompute it"
                )
            rows[r[0]] = r[1]
        return rows


class PartWriter:
    """Append rows to a part file; each :meth:`write` ends at a line boundary, flushed and fsynced.

    Args:
        path: the part file.
        settings: written as its first line (checked on resume).
        resume: keep the complete rows already there (a torn last line is cut off);
            otherwise start the file afresh.
    """

    def __init__(self, path: str | os.PathLike, settings: Mapping, resume: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keep = None
        if resume and self.path.is_file():
            text = _decode(self.path.read_bytes())
            first = text.find("\n")
            if first >= 0:
                _check_settings(self.path, text[: first + 1], settings)
                _, used = _complete_rows(text[first + 1 :], self.path)
                keep = len(text[: first + 1 + used].encode("utf-8", errors="surrogateescape"))
        if keep is None:
            self._file = open(self.path, "w", newline="", encoding="utf-8", errors="surrogateescape")
            self._file.write(_settings_line(settings))
            self._sync()
        else:
            with open(self.path, "r+b") as f:  # cut the torn line off, then append after the rest
                f.truncate(keep)
            self._file = open(self.path, "a", newline="", encoding="utf-8", errors="surrogateescape")

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def write(self, rows: Iterable[tuple[str, str]]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        self._file.write(buf.getvalue())
        self._sync()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
