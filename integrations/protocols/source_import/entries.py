"""A feedback entry as both directions know it, and the errors found in many of them.

An entry is three strings: a date written "YYYY-MM-DD HH:mm:ss", a name and a content.
"""

import hashlib
import json

import pandas as pd

from uploads.errors import MAX_ERRORS, IntakeError, error

FIELDS = ("date", "name", "content")
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"  # the seed's "YYYY-MM-DD HH:mm:ss"
DATE_WORDS = "YYYY-MM-DD HH:mm:ss"
DATE_PATTERN = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"  # strptime alone would take "2024-3-8 0:29:00"
MAX_LENGTH = {"name": 200, "content": 10_000}
UNSTORABLE = "[\x00\ud800-\udfff]"  # NUL, and surrogates: text the database cannot store


def fingerprint(date_text, name, content):
    """What identifies an entry within its REST source (the integration): what it says, its date
    written in DATE_FORMAT as stored (UTC, to the second).

    Not the source_id it came under: a source renamed keeps its entries, and the same entries
    sent again under the new name are still the same entries. The parts are hashed as a JSON
    list rather than joined with "|": joined, a name "a|b" with content "c" would be the same
    entry as name "a" with content "b|c".
    """
    parts = json.dumps([date_text, name, content], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(parts.encode()).hexdigest()


def is_text(column):
    """Which cells of a column hold a string (not a number, a list, null, or nothing)."""
    return column.map(lambda value: isinstance(value, str)).astype(bool)


def canonical_dates(text, date_format, pattern=None):
    """(dates as naive UTC datetime64, which cells did not parse). A date with a UTC offset is
    converted to UTC; one without is taken as UTC."""
    readable = text.notna()
    if pattern:
        readable &= text.str.fullmatch(pattern).astype("boolean").fillna(False).astype(bool)
    dates = pd.to_datetime(text.where(readable), format=date_format, errors="coerce", utc=True)
    return dates.dt.tz_localize(None), text.notna() & dates.isna()


class Problems:
    """The errors found in a request or a file, reported by row (1-based), the first MAX_ERRORS
    described and all of them counted."""

    def __init__(self):
        self.found = []
        self.total = 0

    def add(self, error_id, description, row=None, column=None):
        self.total += 1
        self.found.append(error(error_id, description, row, column))

    def add_rows(self, failing, describe):
        """One error per failing row: `failing` is a boolean Series indexed by position,
        describe(position) gives (error_id, description, column)."""
        failing = failing.astype("boolean").fillna(False).astype(bool)
        positions = failing.index[failing.to_numpy()]
        self.total += len(positions)
        for position in positions[:MAX_ERRORS]:
            error_id, description, column = describe(position)
            self.found.append(error(error_id, description, int(position) + 1, column))

    def __bool__(self):
        return bool(self.found)

    def refusal(self):
        """The IntakeError refusing it all, row by row (a row's errors in the order found)."""
        found = sorted(self.found, key=lambda item: item["row"] or 0)
        return IntakeError(found, total=self.total)

    def raise_any(self):
        if self.found:
            raise self.refusal()
