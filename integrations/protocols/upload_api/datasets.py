"""The two CSV datasets of a submission, Data and EventData, read and checked row by row.

Used both ways: inbound, processing reads a submission's Data and EventData (what is wrong
with its rows is the submission's feedback); outbound, the check reads a file to be sent as
Data (what is wrong refuses the file before anything is sent). Vectorised with pandas: cells
are read as text, each rule is a boolean mask over all rows, and only the first failing rows
are described.

The seed's rules, and the choices where it is vague:
- values are comma-separated, in the seed's column order; a header row is optional (a first
  row whose first cell is "Reference" is one, and must then name the columns in that order);
- blank lines are skipped and not counted: row 1 is the first data row;
- dates are DD/MM/YYYY (a one-digit day or month is accepted), times hh:mm on a 24-hour clock;
  an end before its start is an error;
- TimeReference is 0, 1 or 2, kept as sent (the seed's text about its meaning is cut off).
"""

import io
import re
import warnings
from dataclasses import dataclass, field

import pandas as pd

from uploads.errors import MAX_ERRORS, PARSE_CSV, TRANSFORM_DATA, error


@dataclass(frozen=True)
class Layout:
    name: str
    columns: tuple  # in the seed's order
    start: tuple  # (date column, time column)
    end: tuple
    limits: dict = field(default_factory=dict)  # text column → most characters


DATA = Layout("Data", ("Reference", "StartDate", "StartTime", "EndDate", "EndTime"),
              start=("StartDate", "StartTime"), end=("EndDate", "EndTime"), limits={"Reference": 200})
EVENT_DATA = Layout(
    "EventData",
    ("Reference", "EventStartDate", "EventStartTime", "EventEndDate", "EventEndTime", "Description", "TimeReference"),
    start=("EventStartDate", "EventStartTime"), end=("EventEndDate", "EventEndTime"),
    limits={"Reference": 200, "Description": 2000},
)
TIME_REFERENCES = ("0", "1", "2")

DATE = r"\d{1,2}/\d{1,2}/\d{4}"
TIME = r"^(\d{1,2}):(\d{2})$"
LINE = re.compile(r"in line (\d+)")


@dataclass
class Problem:
    dataset: str
    row: int | None
    column: str | None
    message: str
    error_id: str = TRANSFORM_DATA

    def as_feedback(self):
        return {"dataset": self.dataset, "row": self.row, "column": self.column, "message": self.message}


class Feedback:
    """What is wrong with a submission's rows: the first MAX_ERRORS problems, ordered by
    dataset, row and column, and how many there are in all."""

    def __init__(self):
        self.found = []
        self.total = 0

    def __bool__(self):
        return self.total > 0

    def add(self, layout, message, row=None, column=None, error_id=TRANSFORM_DATA):
        self.total += 1
        self.found.append(Problem(layout.name, row, column, message, error_id))

    def add_rows(self, layout, failing, column, describe):
        """One problem per failing row: `failing` is a boolean Series over the rows in order,
        describe(position) the message (position from 0). Only the first rows are described;
        all are counted."""
        positions = failing.to_numpy(dtype=bool).nonzero()[0]
        self.total += len(positions)
        for position in positions[:MAX_ERRORS]:
            self.found.append(Problem(layout.name, int(position) + 1, column, describe(position)))

    def first(self):
        order = {DATA.name: 0, EVENT_DATA.name: 1}
        columns = {name: i for layout in (DATA, EVENT_DATA) for i, name in enumerate(layout.columns)}
        self.found.sort(key=lambda p: (order.get(p.dataset, 2), p.row or 0, columns.get(p.column, -1)))
        return self.found[:MAX_ERRORS]

    def errors(self, qualified=True):
        """The problems as the platform's errors ({"id", "description", "row", "column"}); qualified,
        the column names its dataset too ("EventData.TimeReference"), as an upload's feedback does."""
        return [error(p.error_id, p.message, p.row,
                      (f"{p.dataset}.{p.column}" if p.column else p.dataset) if qualified else p.column)
                for p in self.first()]


def feedback_of(errors):
    """An upload's errors (see Feedback.errors) as GetResults' feedback: dataset, row, column, message."""
    found = []
    for item in errors:
        dataset, _, column = (item.get("column") or "").partition(".")
        found.append({"dataset": dataset or None, "row": item.get("row"), "column": column or None,
                      "message": item.get("description", "")})
    return found


@dataclass
class Rows:
    """A dataset's rows: `cells` as sent (text, stripped, the seed's column names) and `frame`
    as read (reference, start, end, and for events description and time_reference), both
    indexed by row number from 1."""

    cells: pd.DataFrame
    frame: pd.DataFrame

    def __len__(self):
        return len(self.frame)

    def as_csv(self, layout):
        """The rows as the seed's CSV: a header row, then the cells, lines ending CRLF."""
        return self.cells.to_csv(index=False, lineterminator="\r\n").removesuffix("\r\n")


def read(layout, text, feedback, required=True):
    """The rows of one dataset, or None when any of them is wrong (the feedback says what)."""
    before = feedback.total
    cells = _cells(layout, text, feedback)
    if cells is None:
        return None
    if required and len(cells) == 0:
        feedback.add(layout, f"{layout.name} holds no rows.")
        return None
    frame = _typed(layout, cells, feedback)
    if feedback.total > before:
        return None
    return Rows(cells=cells, frame=frame)


def decode(data):
    """A file's bytes as text: UTF-8 (with or without a BOM), else Windows-1252, as Excel saves CSV."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _cells(layout, text, feedback):
    width = len(layout.columns)
    try:
        # One column more than the layout has, so that a row with an extra field is one row's
        # problem (below); pandas refuses rows wider still, and cuts the first row to fit (warning).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            frame = pd.read_csv(io.StringIO(text), header=None, names=range(width + 1), index_col=False, dtype=str,
                                keep_default_na=False, skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame(columns=range(width + 1), dtype=str)
    except pd.errors.ParserError as exc:
        match = LINE.search(str(exc))
        headed = text.lstrip()[:9].lower() == "reference"
        row = int(match.group(1)) - (1 if headed else 0) if match else None
        feedback.add(layout, f"The row has more than the {width} columns of {layout.name} "
                             f"({', '.join(layout.columns)}), or the CSV is improperly formatted: "
                             f"{str(exc).strip()[:200]}", row=row, error_id=PARSE_CSV)
        return None
    frame = frame.apply(lambda column: column.str.strip())
    frame = frame[(frame != "").any(axis=1)]  # a line of spaces is blank too
    if len(frame) and frame.iat[0, 0].lower() == "reference":
        named = [name for name in frame.iloc[0].tolist() if name]
        if [name.lower() for name in named] != [name.lower() for name in layout.columns]:
            feedback.add(layout, f"The header row names the columns {', '.join(named)}; {layout.name} has these, "
                                 f"in this order: {', '.join(layout.columns)}.", column=_first_wrong(named, layout))
            return None
        frame = frame.iloc[1:]
    extra = frame.pop(width)
    frame.columns = list(layout.columns)
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    feedback.add_rows(layout, extra != "", None, lambda i: f"The row has more than the {width} columns of "
                                                           f"{layout.name} ({', '.join(layout.columns)}).")
    return frame


def _first_wrong(named, layout):
    """The column a header row should have named where it names another (or None for one too many)."""
    for given, wanted in zip(named, layout.columns):
        if given.lower() != wanted.lower():
            return wanted
    return layout.columns[len(named)] if len(named) < len(layout.columns) else None


def _typed(layout, cells, feedback):
    out = pd.DataFrame(index=cells.index)
    for name in layout.columns:
        column = cells[name]
        missing = column == ""
        feedback.add_rows(layout, missing, name, lambda i: "required")
        if name == "Reference" or name == "Description":
            limit = layout.limits[name]
            feedback.add_rows(layout, column.str.len() > limit, name, lambda i, limit=limit: f"at most {limit:,} "
                                                                                               "characters")
            out[name.lower()] = column
        elif name == "TimeReference":
            feedback.add_rows(layout, ~missing & ~column.isin(TIME_REFERENCES), name,
                              lambda i, column=column: f"“{column.iat[i]}” is not 0, 1 or 2")
            out["time_reference"] = pd.to_numeric(column.where(column.isin(TIME_REFERENCES)), errors="coerce")
    starts = _moments(layout, cells, *layout.start, feedback)
    ends = _moments(layout, cells, *layout.end, feedback)
    feedback.add_rows(layout, ends < starts, layout.end[0], lambda i: (
        f"ends ({cells[layout.end[0]].iat[i]} {cells[layout.end[1]].iat[i]}) before it starts "
        f"({cells[layout.start[0]].iat[i]} {cells[layout.start[1]].iat[i]})"))
    out["start"], out["end"] = starts, ends
    return out


def _moments(layout, cells, date_column, time_column, feedback):
    """Date and time columns as one datetime64 column (NaT where either is wrong); the wrong cells
    are described, each in its own column."""
    dates_text, times_text = cells[date_column], cells[time_column]
    dates = _each_distinct(dates_text, _dates)
    feedback.add_rows(layout, (dates_text != "") & dates.isna(), date_column,
                      lambda i: f"“{dates_text.iat[i]}” is not a date written DD/MM/YYYY")
    offsets = _each_distinct(times_text, _times)
    feedback.add_rows(layout, (times_text != "") & offsets.isna(), time_column,
                      lambda i: f"“{times_text.iat[i]}” is not a time written hh:mm (00:00 to 23:59)")
    return dates + offsets


def _each_distinct(column, read):
    """read() applied to each distinct value once, then spread over the rows: a timesheet's dates
    and times repeat (a few dozen of them over many thousand rows)."""
    codes, distinct = pd.factorize(column)
    values = read(pd.Series(distinct, dtype=str))
    return pd.Series(values.to_numpy()[codes], index=column.index).where(codes >= 0)


def _dates(text):
    return pd.to_datetime(text.where(text.str.fullmatch(DATE)), format="%d/%m/%Y", errors="coerce")


def _times(text):
    parts = text.str.extract(TIME).apply(pd.to_numeric, errors="coerce")
    minutes = (parts[0] * 60 + parts[1]).where((parts[0] <= 23) & (parts[1] <= 59))
    return pd.to_timedelta(minutes, unit="min")


def empty_rows(layout):
    """No rows (an EventData that was not sent)."""
    frame = pd.DataFrame({"reference": pd.Series(dtype=str), "start": pd.Series(dtype="datetime64[us]"),
                          "end": pd.Series(dtype="datetime64[us]"), "description": pd.Series(dtype=str),
                          "time_reference": pd.Series(dtype="int64")})
    return Rows(cells=pd.DataFrame(columns=list(layout.columns), dtype=str), frame=frame)
