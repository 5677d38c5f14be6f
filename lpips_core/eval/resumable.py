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
import os
from pathlib import Path
from typing import Iterable, Mapping

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
        suffix = p.name[len(output.name) + 5:]
        if suffix.isdigit():
            found.append((int(suffix), p))
    return [p for _, p in sorted(found)]


def _settings_line(settings: Mapping) -> str:
    return MAGIC + json.dumps(dict(settings), sort_keys=True) + "\n"


def _check_settings(path: Path, line: str, settings: Mapping) -> None:
    try:
        found = json.loads(line[len(MAGIC):]) if line.startswith(MAGIC) else None
    except json.JSONDecodeError:
        found = None
    if found is None:
        raise ResumeError(f"{path}: not an lpips-core part file (first line {line[:40]!r}); delete it")
    check_same_settings(path, found, settings)


def check_same_settings(path: Path, found: Mapping, settings: Mapping) -> None:
    """Raise :class:`ResumeError` naming every setting in which ``found`` (read from ``path``) differs."""
    want = json.loads(json.dumps(dict(settings), sort_keys=True))
    found = dict(found)
    diff = sorted(k for k in set(found) | set(want) if found.get(k) != want.get(k))
    if diff:
        parts = ", ".join(f"{k}={found.get(k)!r} there, {want.get(k)!r} now" for k in diff)
        raise ResumeError(f"{path} was written with other settings ({parts}); resume with the same "
                          f"options, or run without --resume to start over")


def _complete_rows(text: str) -> tuple[list[tuple[str, str]], int]:
    """Rows of the complete lines of ``text`` and the number of characters they span.

    A line counts only if it ends with a newline and holds a key and a float; the
    first line that does not is where a kill tore the file, and it and anything
    after it are ignored.
    """
    rows, used = [], 0
    while True:
        end = text.find("\n", used)
        if end < 0:
            break
        line = text[used:end]
        try:
            fields = next(csv.reader([line]))
            if len(fields) != 2:
                break
            float(fields[1])
        except (ValueError, StopIteration, csv.Error):
            break
        rows.append((fields[0], fields[1]))
        used = end + 1
    return rows, used


def read_part(path: str | os.PathLike, settings: Mapping) -> dict[str, str]:
    """{key: value text} of the complete rows of a part file (a torn last line is dropped).

    Raises:
        ResumeError: the file was written with other ``settings``.
    """
    path = Path(path)
    text = path.read_bytes().decode("utf-8", errors="replace")
    first = text.find("\n")
    if first < 0:  # killed while writing the settings line: nothing was computed
        return {}
    _check_settings(path, text[:first + 1], settings)
    rows, _ = _complete_rows(text[first + 1:])
    return dict(rows)


def read_table(path: str | os.PathLike, header: tuple[str, str]) -> dict[str, str]:
    """{key: value text} of a finished two-column CSV written by an earlier run.

    Raises:
        ResumeError: its header is not ``header``.
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        first = next(reader, None)
        if first is None or tuple(first[:2]) != tuple(header):
            raise ResumeError(f"{path}: header {first} is not {list(header)}; not a table of this command "
                              f"(choose another --output or delete it)")
        return {r[0]: r[1] for r in reader if len(r) >= 2}


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
            text = self.path.read_bytes().decode("utf-8", errors="replace")
            first = text.find("\n")
            if first >= 0:
                _check_settings(self.path, text[:first + 1], settings)
                _, used = _complete_rows(text[first + 1:])
                keep = len(text[:first + 1 + used].encode("utf-8"))
        if keep is None:
            self._file = open(self.path, "w", newline="", encoding="utf-8")
            self._file.write(_settings_line(settings))
            self._sync()
        else:
            with open(self.path, "r+b") as f:  # cut the torn line off, then append after the rest
                f.truncate(keep)
            self._file = open(self.path, "a", newline="", encoding="utf-8")

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

    def __enter__(self) -> "PartWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
