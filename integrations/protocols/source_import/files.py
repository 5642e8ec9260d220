"""An outbound integration's file, read into entries: the check refuses a file that cannot
be sent whole (before anything is sent), the client reads it again to send it.

A file is JSON (a list of objects) when it is sent as application/json, CSV otherwise. Its
columns are the integration's mapping; its dates are read with the mapping's date format
and written the way the seed wants them.
"""

import io
import json

import pandas as pd

from uploads.errors import PARSE_CSV, PARSE_JSON, TRANSFORM_DATA, IntakeError, error

from .entries import DATE_FORMAT, Problems, canonical_dates, is_text
from .payload import is_json


def read_file(mapping, data, content_type):
    """The file's entries as the seed's: a DataFrame indexed by row position with date (text,
    as the seed writes dates), name and content. Raises IntakeError listing what is wrong, row
    by row."""
    if not data.strip():
        raise IntakeError([error(PARSE_JSON if is_json(content_type) else PARSE_CSV, "The file is empty.")])
    frame = _read_json(data) if is_json(content_type) else _read_csv(data)
    if len(frame) == 0:
        raise IntakeError([error(TRANSFORM_DATA, "The file holds no rows.")])

    problems = Problems()
    missing = [key for key in mapping.columns.values() if key not in frame.columns]
    for key in missing:
        problems.add(TRANSFORM_DATA, f"The file has no “{key}” column, which the Source tab maps to an entry.",
                     column=key)
    problems.raise_any()

    text = {}
    for field, key in mapping.columns.items():
        column = frame[key].map(_as_text)
        problems.add_rows(~is_text(column), lambda i, key=key: (
            TRANSFORM_DATA, "missing" if _is_missing(frame.at[i, key]) else "expected text", key))
        text[field] = column.where(is_text(column)).astype("string")
        if field == "date":
            text["date"] = text["date"].str.strip()
            dates, undated = canonical_dates(text["date"], mapping.date_format)
            problems.add_rows(undated, lambda i, key=key: (
                TRANSFORM_DATA, f"“{text['date'][i]}” does not match the date format {mapping.date_format}", key))
    problems.raise_any()
    return pd.DataFrame({"date": dates.dt.strftime(DATE_FORMAT), "name": text["name"],
                         "content": text["content"]}, index=frame.index)


def _is_missing(value):
    """An empty cell: a key a JSON object lacks (NaN in the frame) or null."""
    return value is None or isinstance(value, float) and value != value


def _as_text(value):
    """Numbers in a JSON file are sent as the text they are; anything else but text is refused."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not _is_missing(value):
        return str(value)
    return value


def _read_json(data):
    try:
        rows = json.loads(data)
    except ValueError as exc:
        raise IntakeError([error(PARSE_JSON, f"The file is not valid JSON: {exc}")]) from None
    if not isinstance(rows, list):
        raise IntakeError([error(PARSE_JSON, "A JSON file must be a list of objects, one per entry.")])
    wrong = [i for i, row in enumerate(rows) if not isinstance(row, dict)]
    if wrong:
        raise IntakeError([error(PARSE_JSON, "Expected an object.", row=i + 1) for i in wrong], total=len(wrong))
    return pd.DataFrame(rows)


def _read_csv(data):
    def read(encoding):
        return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding=encoding)

    try:
        try:
            frame = read("utf-8-sig")
        except UnicodeDecodeError:
            frame = read("cp1252")  # Excel on Windows saves CSV in its ANSI code page
    except pd.errors.EmptyDataError:
        raise IntakeError([error(PARSE_CSV, "The CSV file has no header row.")]) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise IntakeError([error(PARSE_CSV, f"The CSV file is improperly formatted: {str(exc).strip()[:300]}")]) \
            from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame
