"""Error reports: what is wrong with a file, grouped by cause and in plain words, and every
error as a CSV file beside the original row it is about.

A protocol's check answers with the first 100 errors of a file (that is what an API answer
lists) and how many there are in all. A report needs every one of them, so when the list is
cut short the file is checked again in slices, each small enough that its errors are listed
whole (the split follows how many errors each slice holds; only slices with errors are split
further). Checks are about records one by one, so a slice finds exactly the errors of its
rows. Slicing knows files of records, CSV or a JSON list; anything else keeps the first
errors, and the report says so.

Nothing here stores anything: a report is made from the file at hand (a refused upload from
the request that sent it, a failed one from its stored file).
"""

import csv
import datetime
import io
import json
import math
import re
import time
from collections import deque
from dataclasses import dataclass, field

from integrations.forms import written_date

from .errors import MAX_ERRORS, IntakeError

SLICE_ERRORS = 80  # a slice is sized to hold about this many errors, under the 100 a check lists
CHECK_SECONDS = 8.0  # how long completing a report may take before it settles for what it found
EXAMPLE_VALUES = 3
EXAMPLE_ROWS = 5

# --- Plain words ----------------------------------------------------------------------------------

SEED_DATE = datetime.date(2016, 8, 16)  # the date of seed 000's own example


def example_date(date_format):
    """How a date in a format typed as "M/D/YYYY" looks: "8/16/2016"."""
    return written_date(SEED_DATE, date_format)


_JSON_PROBLEMS = {
    "Expecting ',' delimiter": "a comma is missing between two values",
    "Expecting ':' delimiter": "a colon is missing after a key",
    "Expecting value": "a value is missing or is not JSON (text needs double quotes)",
    "Expecting property name enclosed in double quotes": "a key is not in double quotes, or a comma is left over",
    "Unterminated string starting at": "a text value is never closed with its double quote",
    "Extra data": "more follows after the end of the JSON",
    "Invalid control character at": "a text value holds a line break or another control character",
}


def _sent_as(content_type):
    kind = content_type.split(";")[0].strip().lower()
    if "json" in kind:
        return "JSON"
    if "csv" in kind or "excel" in kind:
        return "CSV"
    return "something else" if kind and kind != "(none)" else "no Content-Type at all"


def _content_type(m):
    sent, wanted, send = m.group("sent"), m.group("wanted").upper(), m.group("send").rstrip(".")
    return (f"This integration takes {wanted} files, and this one was sent as {_sent_as(sent)} "
            f"(Content-Type {sent}). Send {wanted}, with Content-Type {send}.")


def _csv_problem(m):
    detail = m.group("detail")
    fields = re.search(r"Expected (\d+) fields in line \d+, saw (\d+)", detail)
    if fields:
        return f"This row has {fields.group(2)} values, but the header names {fields.group(1)} columns."
    if "EOF inside string" in detail:
        return "A quoted value is opened with a double quote and never closed."
    if "codec can't decode" in detail:
        return "The file is not text: it is in neither UTF-8 nor Windows-1252."
    return "The file could not be read as CSV: it must be comma-separated, with one header row."


def _json_problem(m):
    said = m.group("msg")
    words = next((plain for lib, plain in _JSON_PROBLEMS.items() if said.startswith(lib)), said[:1].lower() + said[1:])
    return f"The file is not valid JSON: {words} (line {m.group('line')}, column {m.group('col')})."


# (the words parsing uses, what a person reads). Anything not listed is shown as it is.
REWORDINGS = [
    (re.compile(r"^The date must be written as (?P<fmt>\S+) \([^)]*\)\.?$"),
     lambda m: f"The date must look like {example_date(m.group('fmt'))} ({m.group('fmt')})."),
    (re.compile(r"^Content-Type (?P<q>['\"])(?P<sent>.*)(?P=q) does not match this integration's Data Format "
                r"\((?P<wanted>\w+)\); send (?P<send>.+)$"), _content_type),
    (re.compile(r"^The CSV request body is improperly formatted: (?P<detail>.*)$", re.S), _csv_problem),
    (re.compile(r"^The JSON request body is improperly formatted: (?P<msg>.*) \(line (?P<line>\d+), "
                r"column (?P<col>\d+)\)\.?$"), _json_problem),
    (re.compile(r"^The JSON request body is not UTF-8.*$", re.S),
     lambda m: "The file is not UTF-8 text, which JSON must be."),
    (re.compile(r"^The request body is empty\.$"), lambda m: "The file is empty."),
    (re.compile(r"^The CSV request body has no header row\.$"), lambda m: "The file has no header row."),
    (re.compile(r"^The JSON request body must be a list of records \(objects\)\.$"),
     lambda m: "The file must be a JSON list of records: [{…}, {…}]."),
    (re.compile(r"^Every record must name a user; this one has no value\.$"), lambda m: "The user is missing."),
]


def plain(description):
    """An error's description in a user's words: no library messages, no strptime codes."""
    text = str(description or "")
    for pattern, words in REWORDINGS:
        match = pattern.match(text)
        if match:
            return words(match)
    return text


# --- The file's records ----------------------------------------------------------------------------


@dataclass
class Table:
    """A file's records as text, for reports: `columns` (CSV header, or JSON keys, flattened) and one
    list of values per record. `records` keeps JSON records as they came, to check slices of them."""

    kind: str  # "csv" or "json"
    columns: list
    rows: list
    records: list = None

    def value(self, row, column):
        """The value of data row `row` (1-based) in `column`, or None."""
        if not row or row > len(self.rows) or column not in self.columns:
            return None
        values = self.rows[row - 1]
        index = self.columns.index(column)
        return values[index] if index < len(values) else None

    def slice(self, start, stop):
        """Rows start..stop-1 (0-based) as a file of the same kind."""
        if self.kind == "json":
            return json.dumps(self.records[start:stop]).encode()
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows[start:stop])
        return out.getvalue().encode()


def read_table(body, content_type, separator="."):
    """The records of a CSV or JSON file (None when it cannot be read as one)."""
    if "json" in (content_type or "").lower():
        return _json_table(body, separator)
    return _csv_table(body)


def _csv_table(body):
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = body.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        return None
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]  # blank lines are skipped
    except csv.Error:
        return None
    if not rows:
        return None
    columns = [name.strip() for name in rows[0]]
    widest = max(len(row) for row in rows)
    columns += [f"(extra value {n})" for n in range(1, widest - len(columns) + 1)]
    return Table("csv", columns, rows[1:])


def _flatten(record, separator, prefix=""):
    flat = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and separator:
            flat.update(_flatten(value, separator, name + separator))
        else:
            flat[name] = value if value is None or isinstance(value, str) else json.dumps(value)
    return flat


def _json_table(body, separator):
    try:
        records = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, list):
        return None
    flat = [_flatten(r, separator) if isinstance(r, dict) else {"(record)": json.dumps(r)} for r in records]
    columns = list(dict.fromkeys(key for record in flat for key in record))
    rows = [["" if record.get(c) is None else record[c] for c in columns] for record in flat]
    return Table("json", columns, rows, records)


# --- Every error -------------------------------------------------------------------------------------


def complete(integration, table, content_type, problem, seconds=CHECK_SECONDS):
    """(every error of the file, whether that is all of them), from a check's answer `problem`.

    When the answer lists them all, that is the list. Otherwise the file is checked again in
    slices sized so that each lists its errors whole (a slice with more is split again), rows
    numbered as in the file. Past `seconds`, what was found so far is returned, not complete.
    """
    if problem.total <= len(problem.errors):
        return list(problem.errors), True
    if table is None or not table.rows:
        return list(problem.errors), False
    protocol, deadline = integration.protocol_spec, time.monotonic() + seconds
    found, pending = [], deque(_split(0, len(table.rows), problem.total))
    while pending:
        if time.monotonic() > deadline:
            return _merge(problem.errors, found), False
        start, stop = pending.popleft()
        try:
            protocol.check(integration, io.BytesIO(table.slice(start, stop)), content_type)
            continue  # no error in these rows
        except IntakeError as sliced:
            if sliced.total <= len(sliced.errors) or stop - start == 1:
                found += [{**e, "row": e["row"] + start if e.get("row") else e.get("row")} for e in sliced.errors]
            else:
                pending.extendleft(reversed(_split(start, stop, sliced.total)))  # in row order
    return _merge([], found), True


def _split(start, stop, errors):
    parts = max(2, min(stop - start, math.ceil(errors / SLICE_ERRORS)))
    size = math.ceil((stop - start) / parts)
    return [(lo, min(lo + size, stop)) for lo in range(start, stop, size)]


def _merge(*lists):
    seen, merged = set(), []
    for item in (e for errors in lists for e in errors):
        key = (item.get("id"), item.get("row"), item.get("column"), item.get("description"))
        if key not in seen:
            seen.add(key)
            merged.append(item)
    return sorted(merged, key=lambda e: (e.get("row") or 0, str(e.get("column") or "")))


# --- Grouped ------------------------------------------------------------------------------------------


@dataclass
class Group:
    """Errors of one cause: the same id, column and (plain) description."""

    id: str
    column: str
    description: str
    count: int = 0
    rows: list = field(default_factory=list)
    values: list = field(default_factory=list)

    @property
    def more_rows(self):
        return self.count - len(self.rows)


@dataclass
class Report:
    errors: list  # every error found, in plain words
    total: int  # how many errors there are in all (at least len(errors))
    complete: bool  # whether `errors` is all of them
    table: Table = None
    groups: list = field(default_factory=list)

    def line(self):
        """The report in one line, for the request log: how many errors, and their main causes."""
        def cause(group):
            return f"{group.column + ': ' if group.column else ''}{group.description}"

        if len(self.groups) == 1:
            said = cause(self.groups[0])
            return said if self.total == 1 else f"{self.total:,} errors: {said}"
        causes = "; ".join(f"{cause(g)} ({g.count:,}×)" for g in self.groups[:3])
        return f"{self.total:,} errors: {causes}"

    @property
    def rows_in_error(self):
        return len({e["row"] for e in self.errors if e.get("row")})

    def csv_lines(self):
        """The report as CSV lines: each row in error with its original values and its errors, and
        the errors about the whole file first (no row). Cells are safe to open in a spreadsheet."""
        columns = self.table.columns if self.table else []
        by_row = {}
        for e in self.errors:
            by_row.setdefault(e.get("row"), []).append(e)
        yield _csv_line(["row", *columns, "errors"])
        for row in sorted(by_row, key=lambda r: r or 0):
            said = " | ".join(f"{e['column']}: {e['description']}" if e.get("column") else e["description"]
                              for e in by_row[row])
            values = (self.table.rows[row - 1] if self.table and row and row <= len(self.table.rows) else [])
            yield _csv_line([row or "", *values, *[""] * (len(columns) - len(values)), said])
        if not self.complete:
            yield _csv_line(["", *[""] * len(columns),
                             f"Only the first {len(self.errors):,} of {self.total:,} errors could be listed."])


def report(errors, total=None, table=None, is_complete=None):
    """A report of these errors (of the file `table`, if at hand): plain words, grouped by cause."""
    words = [{**e, "description": plain(e.get("description"))} for e in errors]
    total = max(total or 0, len(words))
    made = Report(words, total, total <= len(words) if is_complete is None else is_complete, table)
    groups = {}
    for e in words:
        key = (str(e.get("id") or ""), str(e.get("column") or ""), e["description"])
        group = groups.setdefault(key, Group(*key))
        group.count += 1
        if e.get("row") and len(group.rows) < EXAMPLE_ROWS:
            group.rows.append(e["row"])
        value = table.value(e.get("row"), e.get("column")) if table else None
        if isinstance(value, str):
            value = _SURROGATE.sub("\ufffd", value)  # shown on a page: must encode as UTF-8
        if value not in (None, "") and value not in group.values and len(group.values) < EXAMPLE_VALUES:
            group.values.append(value)
    made.groups = sorted(groups.values(), key=lambda g: -g.count)
    return made


def of_file(integration, body, content_type, problem, seconds=CHECK_SECONDS):
    """The report of a file the intake refused (IntakeError `problem`), from the file itself."""
    about_rows = any(e.get("row") for e in problem.errors)
    separator = (integration.settings or {}).get("flatten_separator") or "."
    # A file refused as a whole (too large, not JSON …) is not read again: nothing in it to point at.
    table = read_table(body, content_type, separator) if about_rows else None
    errors, is_complete = complete(integration, table, content_type, problem, seconds)
    return report(errors, problem.total, table, is_complete)


def of_upload(upload, seconds=CHECK_SECONDS):
    """The report of an upload that failed: its stored errors (the first 100), completed from its
    stored file when there may be more and a check of that file finds the same first errors."""
    errors = list(upload.errors or [])
    if len(errors) < MAX_ERRORS or not upload.file:
        return report(errors, len(errors), _stored_table(upload))
    table = _stored_table(upload)
    try:
        upload.integration.protocol_spec.check(upload.integration, io.BytesIO(_stored_body(upload)),
                                               upload.content_type)
    except IntakeError as problem:
        if [_key(e) for e in problem.errors[:len(errors)]] == [_key(e) for e in errors[:len(problem.errors)]]:
            found, is_complete = complete(upload.integration, table, upload.content_type, problem, seconds)
            return report(found, problem.total, table, is_complete)
    except Exception:  # noqa: BLE001 - the stored errors still say what went wrong
        pass
    return report(errors, len(errors), table, is_complete=False)


def _key(e):
    return e.get("id"), e.get("row"), e.get("column")


def _stored_body(upload):
    with upload.file.open("rb") as stored:
        return stored.read()


def _stored_table(upload):
    if not upload.file:
        return None
    try:
        body = _stored_body(upload)
    except OSError:
        return None
    return read_table(body, upload.content_type, (upload.integration.settings or {}).get("flatten_separator") or ".")


# --- CSV cells -------------------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


_SURROGATE = re.compile("[\ud800-\udfff]")


def safe_cell(value):
    """A cell a spreadsheet program will not run: text starting like a formula (=, +, -, @, or a TAB
    or CR before one) is prefixed with an apostrophe; plain numbers such as -3 stay numbers."""
    text = _SURROGATE.sub("\ufffd", "" if value is None else str(value))  # lone surrogates cannot be written
    if text.startswith(_FORMULA_START) and not _NUMBER.match(text):
        return "'" + text
    return text


def _csv_line(cells):
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([safe_cell(c) for c in cells])
    return out.getvalue()
