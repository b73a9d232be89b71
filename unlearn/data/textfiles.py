"""A user's data files read as text first: not UTF-8, empty, header-only or broken files are named before a reader sees them.

The ``datasets`` readers fail on such files with ``StopIteration``, ``DatasetGenerationError`` or
"corresponds to no data!"; these checks say which file, which byte or line, and what to do.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from unlearn.errors import DataError

DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".pq", ".txt", ".tsv", ".arrow")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")  # name or owner/name


def looks_like_path(value: str | Path) -> bool:
    """Whether ``value`` names a local file or folder rather than a hub id (``owner/name``).

    A path starts with ``.``, ``~`` or ``/``, holds a backslash or more than one ``/``, or ends with
    a data file suffix; a hub id is ``name`` or ``owner/name``.
    """
    text = str(value)
    if text.startswith((".", "~", "/")) or "\\" in text or Path(text).suffix.lower() in DATA_SUFFIXES:
        return True
    return not _HUB_ID.fullmatch(text)


def missing_path_message(key: str, value: str | Path, what: str = "file or folder") -> str:
    return (f"{key}={value}: no such {what} (it looks like a local path, so it is not tried as a Hugging Face hub "
            f"id, which has the form owner/name). Check the path; a relative path starts from {Path.cwd()}.")


def read_text(path: Path) -> str:
    """The file as text, a UTF-8 byte-order mark removed.

    Raises:
        DataError: the file is not UTF-8, naming the byte offset and line of the first bad byte.
    """
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(f"{path} is not UTF-8 text: byte {err.start} (line {line}) is "
                        f"{data[err.start:err.start + 1]!r}. Save the file as UTF-8 (for example "
                        f"`iconv -f latin1 -t utf-8 {Path(path).name} > fixed{Path(path).suffix}`).") from err


def _no_rows(path: Path, why: str) -> DataError:
    return DataError(f"{path} has no rows ({why}): an unlearning run needs at least one example.")


def parse_json_rows(path: Path, text: str | None = None) -> list:
    """Rows of a JSON Lines file, or of a JSON array (a JSON object of columns is returned as ``[object]``).

    Raises:
        DataError: not UTF-8, or a line (or the whole file) that is not JSON, with its number.
    """
    text = read_text(path) if text is None else text
    start = text.lstrip()[:1]
    if start in ("[", "{"):
        try:
            whole = json.loads(text)
        except json.JSONDecodeError as err:
            if start == "[":
                raise DataError(f"{path} is not JSON: {err.msg} at line {err.lineno}, column {err.colno}.") from err
        else:
            return whole if isinstance(whole, list) else [whole]
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"line {number} of {path} is not JSON: {err.msg} (column {err.colno}): "
                                f"{line.strip()[:60]!r}. Fix or remove that line (JSON Lines: one object a line).") from err
    return rows


def check_data_file(path: Path, reader: str) -> list[str] | None:
    """Check a JSON/JSON Lines/CSV file before ``datasets`` reads it; returns a CSV file's header.

    Raises:
        DataError: not UTF-8, empty, only a CSV header, or a line that is not JSON.
    """
    if reader == "parquet":
        return None
    text = read_text(path)
    if not text.strip():
        raise _no_rows(path, "the file is empty")
    if reader == "json":
        rows = parse_json_rows(path, text)
        if not rows or rows == [{}]:
            raise _no_rows(path, "it holds no JSON objects")
        bad = next((n for n, row in enumerate(rows) if not isinstance(row, dict)), None)
        if bad is not None:
            raise DataError(f"{path}, row {bad}: expected a JSON object with the question and answer (or text), "
                            f"got {type(rows[bad]).__name__} {rows[bad]!r:.60}.")
        return None
    try:
        records = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    except csv.Error as err:
        raise DataError(f"{path} is not readable CSV ({err}).") from err
    if not records:
        raise _no_rows(path, "only blank lines")
    if len(records) < 2:
        raise _no_rows(path, f"only the header line {','.join(records[0])!r}")
    return records[0]
