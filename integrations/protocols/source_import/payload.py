"""An import request's body, checked whole before anything of it is stored.

Used by the check (to refuse a bad request with a 400 that says what is wrong, and where)
and by processing (to read the stored request again). Each error's column is the path of
the field in the request, e.g. "payload[3].date", which the view answers as its "field".
"""

import json

import pandas as pd

from uploads.errors import PARSE_JSON, TRANSFORM_DATA

from .entries import UNSTORABLE, DATE_FORMAT, DATE_PATTERN, DATE_WORDS, FIELDS, MAX_LENGTH, Problems, canonical_dates, is_text

UNKNOWN_SOURCE = "unknown source_id"


def is_json(content_type):
    """application/json, with or without parameters (charset), and the other JSON media types."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type in ("application/json", "text/json") or media_type.endswith("+json")


def read_request(data, content_type, source_id):
    """The entries of an import request for the source `source_id`: a DataFrame indexed by
    their position in the payload, with date (naive UTC), date_text, name and content, and
    the request's source_id in its attrs.

    Raises IntakeError listing what is wrong. Any source_id but this one is "unknown", whether
    it exists elsewhere or not, so that nothing about other sources can be learnt from it.
    source_id=None takes the request's own (a stored request, checked when it came in).
    """
    problems = Problems()
    if not is_json(content_type):
        problems.add(TRANSFORM_DATA, "expected application/json", column="Content-Type")
    document = _document(data, problems)
    if not isinstance(document, dict):
        if document is not None:
            problems.add(PARSE_JSON, "expected a JSON object with source_id and payload", column="body")
        problems.raise_any()

    sent_source = document.get("source_id")
    if "source_id" not in document:
        problems.add(TRANSFORM_DATA, "required", column="source_id")
    elif not isinstance(sent_source, str):
        problems.add(TRANSFORM_DATA, "expected a string", column="source_id")
    elif source_id is not None and sent_source != source_id:
        problems.add(TRANSFORM_DATA, UNKNOWN_SOURCE, column="source_id")

    entries = document.get("payload")
    frame = None
    if "payload" not in document:
        problems.add(TRANSFORM_DATA, "required", column="payload")
    elif not isinstance(entries, list):
        problems.add(TRANSFORM_DATA, "expected a list of entries", column="payload")
    elif not entries:
        problems.add(TRANSFORM_DATA, "must not be empty", column="payload")
    else:
        frame = _entries(entries, problems)
    problems.raise_any()
    frame.attrs["source_id"] = sent_source
    return frame


def _document(data, problems):
    """The body as JSON, or None (and an error) when it is not."""
    if not data.strip():
        problems.add(PARSE_JSON, "the request body is empty", column="body")
        return None
    try:
        return json.loads(data)  # bytes: UTF-8 (with or without a BOM), or UTF-16/32
    except ValueError as exc:
        problems.add(PARSE_JSON, f"not valid JSON: {exc}", column="body")
        return None


def _entries(entries, problems):
    positions = [i for i, entry in enumerate(entries) if isinstance(entry, dict)]
    if len(positions) < len(entries):
        wrong = pd.Series(True, index=range(len(entries)))
        wrong[positions] = False
        problems.add_rows(wrong, lambda i: (TRANSFORM_DATA, "expected an object with date, name and content",
                                            f"payload[{i}]"))
    frame = pd.DataFrame([entries[i] for i in positions], columns=FIELDS, index=positions)

    text, dates = {}, None
    for name in FIELDS:  # field by field, so that a row's errors come in the order of its fields
        column = frame[name]
        readable = is_text(column)
        problems.add_rows(~readable, lambda i, name=name: (
            TRANSFORM_DATA, "required" if name not in entries[i] else "expected a string", f"payload[{i}].{name}"))
        text[name] = column.where(readable).astype("string")
        if name == "date":
            dates, undated = canonical_dates(text["date"], DATE_FORMAT, DATE_PATTERN)
            problems.add_rows(undated, lambda i: (TRANSFORM_DATA, f"expected {DATE_WORDS}", f"payload[{i}].date"))
        else:
            limit = MAX_LENGTH[name]
            problems.add_rows(text[name].str.len() > limit, lambda i, name=name, limit=limit: (
                TRANSFORM_DATA, f"at most {limit:,} characters", f"payload[{i}].{name}"))
            # What the database cannot store is refused here, not found failing in the worker:
            # NUL (PostgreSQL text refuses it) and lone surrogates (not encodable as UTF-8).
            problems.add_rows(text[name].str.contains(UNSTORABLE, regex=True), lambda i, name=name: (
                TRANSFORM_DATA, "holds a NUL or an unpaired surrogate character", f"payload[{i}].{name}"))
    return pd.DataFrame({"date": dates, "date_text": text["date"], "name": text["name"],
                         "content": text["content"]}, index=frame.index)
