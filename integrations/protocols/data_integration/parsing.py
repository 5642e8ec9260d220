"""Reading an uploaded file into a table, and checking it against the integration's Data Format.

One function, `parse_upload`, used by the check (to refuse a bad file before anything is
stored, in both directions) and by processing (to re-read the stored file). Vectorised with pandas: no Python loop per row on the happy path;
bad rows are found with boolean masks and only the first ones are described.
"""

import io
import json
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from uploads.errors import MAX_ERRORS, PARSE_CSV, PARSE_JSON, TRANSFORM_DATA, IntakeError, error
from uploads.models import Account

# Content types of seed 000, and the seed's own misspelling of the Excel one.
CONTENT_TYPES = {
    "application/json": "json",
    "text/csv": "csv",
    "application/vnd.ms-excel": "csv",
    "application/vns.ms-excel": "csv",
}
CANONICAL_CONTENT_TYPE = {"json": "application/json", "csv": "text/csv"}
MAX_INT_DIGITS = 300  # a JSON integer with more digits is out of a float's range: not a number here
MAX_USER_CHARACTERS = 254  # what an account's email column holds (uploads.models.Account)


@dataclass
class ParsedUpload:
    """The records of a file as a DataFrame whose columns are the field keys.

    The user column is lower-cased and stripped, the date column is datetime64, the source
    fields of metrics (other than counts) are floats (NaN where the file left them empty).
    """

    frame: pd.DataFrame
    records: int
    data_format: str
    # Each record's user as a code into user_emails (distinct, cleaned; may hold ""), so that
    # processing need not factorize the user column again.
    user_codes: np.ndarray = None
    user_emails: np.ndarray = None

    @property
    def users(self):
        return self.frame.attrs["user_key"]

    @property
    def dates(self):
        return self.frame.attrs["date_key"]


def data_format_of(content_type):
    """'text/csv; charset=utf-8' → 'csv'; None for a type seed 000 does not know."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return CONTENT_TYPES.get(media_type)


def parse_upload(fmt, data: bytes, content_type: str) -> ParsedUpload:
    """Parse and validate a whole file; raise IntakeError listing what is wrong."""
    wanted = fmt.data_format
    if not data.strip():
        raise IntakeError([error(PARSE_JSON if wanted == "json" else PARSE_CSV, "The request body is empty.")])
    sent = data_format_of(content_type)
    if sent != wanted:
        raise IntakeError([error(
            TRANSFORM_DATA,
            f"Content-Type {content_type or '(none)'!r} does not match this integration's Data Format "
            f"({wanted.upper()}); send {CANONICAL_CONTENT_TYPE[wanted]}"
            + (" or application/vnd.ms-excel." if wanted == "csv" else "."),
        )])

    numeric_keys = {m.source_key for m in fmt.metrics if m.aggregation != "count"}
    frame = (_read_json(fmt, data) if wanted == "json"
             else _read_csv(data, numeric_keys, {fmt.user_key, fmt.date_key}))
    if len(frame) == 0:
        raise IntakeError([error(TRANSFORM_DATA, "The file holds no records.")])
    frame, user_codes, emails = _transform(fmt, frame)
    return ParsedUpload(frame=frame, records=len(frame), data_format=wanted, user_codes=user_codes,
                        user_emails=emails)


def _read_csv(data, numeric_keys, repeated_keys):
    """Metric columns are read as numbers by the C parser (fast); if one holds text, read all as text.

    The user and date columns repeat a few hundred values over many rows: read as categories,
    the parser hands over their distinct values and codes, which _transform needs anyway.
    """
    def read(**options):
        return pd.read_csv(io.BytesIO(data), keep_default_na=False, na_values=[""], encoding=encoding, **options)

    encoding = "utf-8-sig"
    try:
        try:
            header = read(nrows=0)
        except UnicodeDecodeError:
            encoding = "cp1252"  # Excel on Windows saves CSV in its ANSI code page
            header = read(nrows=0)
        text = {c: ("category" if str(c).strip() in repeated_keys else str) for c in header.columns}
        numeric = {c: "float64" for c in header.columns if str(c).strip() in numeric_keys}
        try:
            frame = read(dtype={**text, **numeric})
        except pd.errors.ParserError:
            raise
        except ValueError:
            frame = read(dtype=text)  # some metric value is not a number: found and reported later
    except pd.errors.EmptyDataError:
        raise IntakeError([error(PARSE_CSV, "The CSV request body has no header row.")])
    except pd.errors.ParserError as exc:
        raise IntakeError([error(PARSE_CSV, f"The CSV request body is improperly formatted: {_short(exc)}",
                                 row=_csv_row(exc))])
    except UnicodeDecodeError as exc:
        raise IntakeError([error(PARSE_CSV, f"The CSV request body is improperly formatted: {_short(exc)}")])
    _refuse_repeated_columns(data, encoding)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _refuse_repeated_columns(data, encoding):
    """A header that names a column twice ("calls, calls", or "calls,calls", which pandas would
    quietly rename "calls.1") is refused: which of the two holds the values cannot be told."""
    header = pd.read_csv(io.BytesIO(data), header=None, nrows=1, dtype=str, na_filter=False, encoding=encoding)
    names = [str(name).strip() for name in header.iloc[0]] if len(header) else []
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise IntakeError([error(PARSE_CSV, f"The CSV header names the column '{name}' more than once.",
                                 row=None, column=name) for name in repeated])


def _csv_row(exc):
    """pandas says 'Expected 3 fields in line 9, saw 4': line 9 of the file is data row 8."""
    match = re.search(r"in line (\d+)", str(exc))
    return int(match.group(1)) - 1 if match else None


def _read_json(fmt, data):
    try:
        # UTF-8 only, as the docs say: json.loads(bytes) would also take UTF-16 and UTF-32.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IntakeError([error(PARSE_JSON, f"The JSON request body is not UTF-8: {_short(exc)}")])
    try:
        records = json.loads(text, parse_int=_json_int, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise IntakeError([error(PARSE_JSON, f"The JSON request body is improperly formatted: {exc.msg} "
                                             f"(line {exc.lineno}, column {exc.colno}).")])
    except _NotJson as exc:
        raise IntakeError([error(PARSE_JSON, str(exc))])
    except RecursionError:
        raise IntakeError([error(PARSE_JSON, "The JSON request body is nested too deeply to be records.")])
    if isinstance(records, dict):
        records = [records]  # one record sent on its own
    if not isinstance(records, list):
        raise IntakeError([error(PARSE_JSON, "The JSON request body must be a list of records (objects).")])
    not_objects = [i for i, r in enumerate(records) if not isinstance(r, dict)]
    if not_objects:
        raise IntakeError([error(PARSE_JSON, "Each record must be a JSON object of field keys and values.", row=i + 1)
                           for i in not_objects[:MAX_ERRORS]], total=len(not_objects))
    if not records:
        return pd.DataFrame()
    if fmt.flatten_json:
        frame = pd.json_normalize(records, sep=fmt.flatten_separator or ".")
    else:
        frame = pd.DataFrame.from_records(records)
    _refuse_nested(frame, fmt)
    return frame


class _NotJson(ValueError):
    pass


def _not_json(constant):
    """NaN, Infinity and -Infinity: Python's json reads them, JSON has no such values."""
    raise _NotJson(f"The JSON request body is improperly formatted: {constant} is not a JSON value.")


def _json_int(digits):
    """An integer as JSON writes it; one too long for a float (and for Python's 4,300-digit limit on
    int()) becomes infinity, which the check then refuses as "not a number" in its row and column."""
    return int(digits) if len(digits) <= MAX_INT_DIGITS else float("inf")


def _refuse_nested(frame, fmt):
    errors, total = [], 0
    for column in frame.columns:
        values = frame[column]
        if values.dtype != object:
            continue
        nested = values.map(lambda v: isinstance(v, (dict, list))).to_numpy(dtype=bool)
        if nested.any():
            rows = np.flatnonzero(nested)
            total += len(rows)
            why = ("lists cannot be flattened" if fmt.flatten_json
                   else "JSON flattening is off for this integration; send flat JSON or turn it on")
            errors += [error(TRANSFORM_DATA, f"Nested value in '{column}': {why}.", int(r) + 1, column)
                       for r in rows[:MAX_ERRORS]]
    if errors:
        raise IntakeError(_first(errors), total=total)


def _transform(fmt, frame):
    user_key, date_key = fmt.user_key, fmt.date_key
    metrics = fmt.metrics
    numeric_keys = list(dict.fromkeys(m.source_key for m in metrics if m.aggregation != "count"))
    required = list(dict.fromkeys([*fmt.field_keys, user_key, date_key, *(m.source_key for m in metrics)]))
    missing = [key for key in required if key not in frame.columns]
    if missing:
        raise IntakeError([error(TRANSFORM_DATA, f"The field key '{key}' of the Data Format is missing from the file.",
                                 column=key) for key in missing])

    # Values repeat (500 users, a few dates): clean and check each distinct value once, then
    # spread the results back to the rows through the codes.
    problems = []  # (mask, column, description)
    codes, distinct = pd.factorize(frame[user_key], use_na_sentinel=True)
    cleaned = np.append(pd.Series(distinct, dtype=object).astype(str).str.strip().str.lower().to_numpy(object), "")
    user_codes, emails = pd.factorize(cleaned)  # "Ann@x.com" and "ann@x.com" are one user
    user_codes = user_codes[codes]  # code -1 (no value) takes the last: ""
    users = pd.Series(emails[user_codes], index=frame.index)
    frame[user_key] = users
    no_user = emails == ""
    problems.append((no_user[user_codes], user_key, "Every record must name a user; this one has no value."))
    if "email" in user_key.lower():
        not_email = ~no_user & ~pd.Series(emails, dtype=object).str.contains("@", regex=False).to_numpy(bool)
        problems.append((not_email[user_codes], user_key, "This is not an email address."))
    problems += _unstorable_users(emails, user_codes, user_key)

    dates = _by_distinct(frame[date_key], lambda d: pd.to_datetime(
        d.astype(str).str.strip(), format=fmt.strptime_format, errors="coerce"), np.datetime64("NaT"))
    problems.append((dates.isna(), date_key,
                     f"The date must be written as {fmt.date_format} ({fmt.strptime_format})."))
    frame[date_key] = dates

    for key in numeric_keys:  # a count needs a record with a value, not a number
        raw = frame[key]
        if raw.dtype == "float64":  # the CSV reader made them numbers already
            numbers, bad = raw, raw.notna() & ~np.isfinite(raw.fillna(0))
        else:
            numbers = _by_distinct(raw, _numbers, np.nan).astype("float64")
            blank = _by_distinct(raw, lambda v: v.astype(str).str.strip() == "", True).astype(bool)
            bad = ~blank & ~np.isfinite(numbers.fillna(np.inf))
        problems.append((bad, key, "This must be a number."))
        frame[key] = numbers

    if fmt.unknown_user == "reject":
        known = set(_known_emails(fmt.tenant_id, [e for e in emails if e]))
        unknown = np.array([e != "" and e not in known for e in emails], dtype=bool)
        problems.append((unknown[user_codes], user_key,
                         "No such user in this organisation, and this integration rejects unknown users."))

    _raise_row_errors(problems)
    frame.attrs["user_key"], frame.attrs["date_key"] = user_key, date_key
    return frame, user_codes, emails


def _unstorable_users(emails, user_codes, user_key):
    """What an account cannot hold is refused here, before the upload is accepted, rather than
    failing in processing (where, out of Sandbox Mode, it would hold back every later upload)."""
    names = pd.Series(emails, dtype=object)
    too_long = (names.str.len() > MAX_USER_CHARACTERS).to_numpy(bool)
    control = names.str.contains(r"[\x00-\x1f\x7f]", regex=True).to_numpy(bool)
    surrogate = names.str.contains(r"[\ud800-\udfff]", regex=True).to_numpy(bool)
    return [
        (too_long[user_codes], user_key, f"A user is named in {MAX_USER_CHARACTERS} characters at most."),
        (control[user_codes], user_key, "This holds a control character (such as NUL); it cannot name a user."),
        (surrogate[user_codes], user_key, "This holds a lone UTF-16 surrogate, which is not text; it cannot name a user."),
    ]


def _by_distinct(values, clean, missing):
    """clean() applied to each distinct value once (a Series of them), spread back to every row."""
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    cleaned = np.asarray(clean(pd.Series(distinct, dtype=object)))
    spread = np.append(cleaned, np.array([missing], dtype=cleaned.dtype))
    return pd.Series(spread[codes], index=values.index)  # code -1 (missing) takes the last: `missing`


def _numbers(values):
    """Numbers, or numeric strings ("3"); True/False and anything else are not."""
    numbers = pd.to_numeric(values.where(~values.map(lambda v: isinstance(v, bool))), errors="coerce")
    return numbers.astype("float64")


def _known_emails(tenant_id, emails):
    known = set()
    emails = list(emails)
    for start in range(0, len(emails), 2000):
        known.update(Account.objects.filter(tenant_id=tenant_id, email__in=emails[start:start + 2000])
                     .values_list("email", flat=True))
    return list(known)


def _raise_row_errors(problems):
    errors, total = [], 0
    for mask, column, description in problems:
        rows = np.flatnonzero(np.asarray(mask, dtype=bool))
        total += len(rows)
        errors += [error(TRANSFORM_DATA, description, int(r) + 1, column) for r in rows[:MAX_ERRORS]]
    if errors:
        raise IntakeError(_first(errors), total=total)


def _first(errors):
    return sorted(errors, key=lambda e: (e["row"] or 0))[:MAX_ERRORS]


def _short(exc):
    return str(exc).replace("Error tokenizing data. ", "").strip()[:300]
