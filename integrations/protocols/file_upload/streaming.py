"""A file sent with a token linked to a data integration (reference 000), processed into that
integration's values as its own uploads are, but in chunks: a multi-GB file in bounded memory.

The file is cut into pieces of about 16 MB (chunk_bytes()) at record boundaries (CSV: a line end outside
quotes, the header repeated on each piece; JSON: whole elements of the top-level list, decoded
one at a time). Each piece goes through seed 000's own `parse_upload` (the same checks, the
same error ids and descriptions, rows renumbered to the whole file) and its values are
aggregated with seed 000's `aggregate`; the pieces' aggregates are combined (sum and count add
up, max and min of the pieces, the later piece's last), and the values are written with
`upsert_values` only when the whole file has passed. All or nothing: processing runs in one
transaction (uploads.processing), so accounts created on the way go too if a later piece fails.

Errors: a file-level problem (no such field key, wrong format, empty, a CSV or JSON that cannot
be read) is reported alone, as seed 000 does; otherwise the first 100 row errors, in row order,
errors of the JSON's structure (records that are not objects) before errors of values.
"""

import codecs
import io
import json
import re

import pandas as pd
from django.conf import settings

from integrations.models import Integration
from integrations.protocols.data_integration.parsing import CONTENT_TYPES, parse_upload
from integrations.protocols.data_integration.protocol import NO_METRICS, DataFormat
from integrations.protocols.data_integration.values import aggregate, upsert_values
from integrations.registry import Processed
from uploads.errors import MAX_ERRORS, PARSE_CSV, PARSE_JSON, TRANSFORM_DATA, IntakeError, error
from uploads.models import Account

CHUNK_BYTES = 16 * 1024 * 1024  # of the file per piece; pandas needs a few times that while parsing it
JSON_BATCH_RECORDS = 50_000  # Python objects of a record weigh ten times its JSON text or more
MAX_RECORD_CHARS = 64 * 1024 * 1024  # one JSON element larger than this is not a record
WRITE_ROWS = 50_000  # values per write: the ORM builds one object per value
LINE = re.compile(r"(\bin line )(\d+)")


def chunk_bytes():
    """How much of the file one piece holds (PORTAL_FILE_UPLOAD_CHUNK_BYTES, for tests that cut
    small files into many pieces)."""
    return int(getattr(settings, "PORTAL_FILE_UPLOAD_CHUNK_BYTES", CHUNK_BYTES))


def process_file(integration, upload, file):
    """Process a stored file into `integration`'s values; raises IntakeError (nothing written)."""
    integration = Integration.objects.select_for_update().get(pk=integration.pk)  # as seed 000's processing
    if not integration.enabled:
        raise IntakeError([error("integration_disabled", f"“{integration.name}” is disabled; nothing was processed. "
                                                         "Enable it, then retry this upload.")])
    fmt = DataFormat.of(integration)
    content_type = upload.content_type
    if CONTENT_TYPES.get((content_type or "").split(";", 1)[0].strip().lower()) != fmt.data_format:
        parse_upload(fmt, file.read(64 * 1024), content_type)  # refuses it, with seed 000's words
    pieces = _CsvPieces(file) if fmt.data_format == "csv" else _JsonPieces(fmt, file)
    problems, accounts, values = _Problems(fmt), _Accounts(fmt), _Values(fmt.metrics)
    for piece in pieces:
        try:
            parsed = parse_upload(fmt, piece.data, content_type)
        except IntakeError as exc:
            if problems.add(exc.errors, piece):
                break
            continue
        piece.records = parsed.records
        if not problems and fmt.metrics:
            values.add(aggregate(parsed, fmt.metrics, accounts.ids(parsed.user_emails)))
    else:
        if pieces.records:
            problems.add_missing_keys(pieces.missing_keys())
    problems.raise_any()
    records = pieces.records
    written = 0
    if fmt.metrics:
        table = values.result()
        for start in range(0, len(table), WRITE_ROWS):
            written += upsert_values(fmt, upload, table.iloc[start:start + WRITE_ROWS])
    message = f"{records:,} records processed into {integration.name}"
    return Processed(records=records, values_written=written,
                     message=f"{message}: {NO_METRICS}" if not fmt.metrics else message)


class _Piece:
    """Part of a file, as a file of its own (`data`, the header included for CSV), and where it
    starts in the whole file: records and, for CSV, lines before it."""

    def __init__(self, data, lines_before=0, records=None):
        self.data, self.lines_before, self.records = data, lines_before, records
        self.records_before = 0

    def count_records(self):
        """How many records it holds, when parsing refused it (the rows after it are numbered on)."""
        if self.records is None:
            # latin-1 reads any byte: only the separators and quotes matter for counting rows.
            self.records = len(pd.read_csv(io.BytesIO(self.data), usecols=[0], dtype=str, keep_default_na=False,
                                           encoding="latin-1", on_bad_lines="skip"))
        return self.records


class _Pieces:
    """A file's pieces, numbered: `records` is how many records the pieces so far held."""

    def __init__(self):
        self.records = 0

    def __iter__(self):
        for piece in self.pieces():
            piece.records_before = self.records
            yield piece
            self.records += piece.count_records()

    def pieces(self):
        raise NotImplementedError

    def missing_keys(self):
        """Field keys no record of the file has (CSV: the header says so in every piece)."""
        return []


# --- CSV --------------------------------------------------------------------------------------


def _record_end(buffer):
    """Where the last whole record of `buffer` (which starts at a record's start) ends: after the
    last line end that is outside quotes (an even number of quotes before it). None if none is."""
    end = buffer.rfind(b"\n")
    if end < 0:
        return None
    quotes = buffer.count(b'"', 0, end)
    while quotes % 2:
        previous = buffer.rfind(b"\n", 0, end)
        if previous < 0:
            return None
        quotes -= buffer.count(b'"', previous, end)
        end = previous
    return end + 1


def _first_record_end(buffer):
    """The end of the header: the first line end outside quotes."""
    quotes, start = 0, 0
    while (end := buffer.find(b"\n", start)) >= 0:
        quotes += buffer.count(b'"', start, end)
        if quotes % 2 == 0:
            return end + 1
        start = end + 1
    return None


class _CsvPieces(_Pieces):
    """Pieces of whole records of about chunk_bytes(), each with the file's header line."""

    def __init__(self, file):
        super().__init__()
        self.file = file
        self.chunk = chunk_bytes()
        self.longest = 4 * self.chunk  # a CSV whose quotes never close is cut here anyway (and refused)

    def pieces(self):
        header, pending, lines, sent = None, b"", 0, False
        while True:
            block = self.file.read(self.chunk)
            pending += block
            if header is None:
                end = _first_record_end(pending)
                if end is None and block and len(pending) < self.longest:
                    continue
                end = end or len(pending)
                header, pending = pending[:end], pending[end:]
            if block:
                end = _record_end(pending)
                if end is None:
                    if len(pending) < self.longest:
                        continue
                    end = len(pending)  # quotes that never close: pandas says so, for this piece
                body, pending = pending[:end], pending[end:]
            else:
                body, pending = pending, b""
            if body.strip() or (not block and not sent):
                # A header alone (or nothing at all) still goes through once: seed 000 refuses it.
                yield _Piece(header + body, lines)
                sent = True
            lines += body.count(b"\n")
            if not block:
                return


# --- JSON -------------------------------------------------------------------------------------


def _json_int(digits):
    """As seed 000 reads a JSON integer: one too long for a float is infinity (then refused as
    not a number)."""
    return int(digits) if len(digits) <= 300 else float("inf")


class _JsonText:
    """A JSON file decoded as it is read (UTF-8, a BOM allowed), with what json's errors need to
    say where they are in the whole file: line and column."""

    def __init__(self, file):
        self.file = file
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.text, self.pos, self.eof = "", 0, False
        self.bytes_read, self.lines_before, self.column_before = 0, 0, 0
        self.chunk = chunk_bytes()

    def more(self):
        """Read the next block (dropping what was consumed); False at the end of the file."""
        if self.eof:
            return False
        consumed = self.text[:self.pos]
        newlines = consumed.count("\n")
        self.lines_before += newlines
        self.column_before = (len(consumed) - consumed.rfind("\n") - 1 if newlines
                              else self.column_before + len(consumed))
        block = self.file.read(self.chunk)
        try:
            added = self.decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            raise IntakeError([error(PARSE_JSON, f"The JSON request body is not UTF-8: '{exc.encoding}' codec can't "
                                                 f"decode byte 0x{exc.object[exc.start]:02x} in position "
                                                 f"{self.bytes_read + exc.start}: {exc.reason}")]) from None
        self.bytes_read += len(block)
        self.text, self.pos, self.eof = self.text[self.pos:] + added, 0, not block
        return True

    def skip_space(self):
        """The next character that is not white space ("" at the end of the file)."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.text) or not self.more():
                return self.text[self.pos:self.pos + 1]

    def refusal(self, message, pos):
        """Seed 000's words for a JSON error at `pos` of the current text."""
        line_start = self.text.rfind("\n", 0, pos)
        line = self.lines_before + self.text.count("\n", 0, pos) + 1
        column = pos - line_start if line_start >= 0 else self.column_before + pos + 1
        return IntakeError([error(PARSE_JSON, f"The JSON request body is improperly formatted: {message} "
                                              f"(line {line}, column {column}).")])


class _JsonPieces(_Pieces):
    """The records of the file's top-level list (one object alone is one record), in batches of
    JSON_BATCH_RECORDS or about chunk_bytes(), each written out as a JSON list of its own.

    A field key that some records of the file have, and none of a piece's, is a column of empty
    values there (as in the whole file), not a missing key: the piece gets it as null.
    """

    def __init__(self, fmt, file):
        super().__init__()
        self.fmt = fmt
        self.source = _JsonText(file)
        self.decoder = json.JSONDecoder(parse_int=_json_int)
        self.required = list(dict.fromkeys([*fmt.field_keys, fmt.user_key, fmt.date_key,
                                            *(m.source_key for m in fmt.metrics)]))
        self.absent = set(self.required)  # from every piece so far

    def missing_keys(self):
        return [key for key in self.required if key in self.absent]

    def pieces(self):
        for batch in self.batches():
            if batch is None:
                yield _Piece(b"", records=0)  # an empty file: seed 000 says so
                continue
            present = set()
            for record in batch:
                if isinstance(record, dict):
                    present.update(_keys(record, self.fmt))
            self.absent -= present
            absent = [key for key in self.required if key not in present]
            if absent:
                filler = dict.fromkeys(absent)
                batch = [{**record, **filler} if isinstance(record, dict) else record for record in batch]
            yield _Piece(json.dumps(batch).encode(), records=len(batch))

    def value(self):
        """The next JSON value; a value cut by the end of a block is read again with more text."""
        source = self.source
        while True:
            try:
                value, end = self.decoder.raw_decode(source.text, source.pos)
            except json.JSONDecodeError as exc:
                if len(source.text) - source.pos < MAX_RECORD_CHARS and source.more():
                    continue
                raise source.refusal(exc.msg, exc.pos) from None
            except RecursionError:
                raise IntakeError([error(PARSE_JSON, "The JSON request body is nested too deeply to be records.")]) \
                    from None
            if end == len(source.text) and source.more():
                continue  # a number may go on in the next block
            source.pos = end
            return value

    def batches(self):
        source = self.source
        first = source.skip_space()
        if first == "":
            yield None
            return
        if first != "[":
            value = self.value()
            self._end()
            if not isinstance(value, dict):
                raise IntakeError([error(PARSE_JSON, "The JSON request body must be a list of records (objects).")])
            yield [value]
            return
        source.pos += 1
        batch, size = [], 0
        if source.skip_space() == "]":
            source.pos += 1
            self._end()
            yield batch
            return
        while True:
            start = source.pos
            batch.append(self.value())
            size += source.pos - start
            after = source.skip_space()
            if after == "]":
                source.pos += 1
                self._end()
                yield batch
                return
            if after != ",":
                raise source.refusal("Expecting ',' delimiter", source.pos)
            source.pos += 1
            source.skip_space()
            if len(batch) >= JSON_BATCH_RECORDS or size >= source.chunk:
                yield batch
                batch, size = [], 0

    def _end(self):
        if self.source.skip_space() != "":
            raise self.source.refusal("Extra data", self.source.pos)


def _keys(record, fmt, prefix=""):
    """The columns a record makes, as seed 000 reads it (flattened with the separator, if on)."""
    for key, value in record.items():
        name = f"{prefix}{key}"
        if fmt.flatten_json and isinstance(value, dict) and value:
            yield from _keys(value, fmt, name + (fmt.flatten_separator or "."))
        else:
            yield name


# --- Errors, accounts, values -----------------------------------------------------------------


class _Problems:
    """The errors of all the pieces, as seed 000 would report them for the whole file."""

    def __init__(self, fmt):
        self.fmt = fmt
        self.file_level = []  # reported alone
        self.structure = []  # JSON records that are not objects
        self.values = []

    def __bool__(self):
        return bool(self.file_level or self.structure or self.values)

    def add(self, errors, piece):
        """Add a piece's errors, renumbered to the whole file; True when reading on is pointless."""
        csv = self.fmt.data_format == "csv"
        if any(e["row"] is None for e in errors) or (csv and any(e["id"] == PARSE_CSV for e in errors)):
            self.file_level = [self._shift(e, piece) for e in errors]
            return True
        for e in errors:
            (self.structure if e["id"] == PARSE_JSON else self.values).append(self._shift(e, piece))
        return len(self.structure) >= MAX_ERRORS or (not self.structure and len(self.values) >= MAX_ERRORS)

    def _shift(self, e, piece):
        if e["row"] is None:
            return e
        if e["id"] == PARSE_CSV:
            # A CSV parse error counts lines, as pandas does ("… in line N"): its line in the whole file.
            before = piece.lines_before
            description = LINE.sub(lambda m: f"{m.group(1)}{int(m.group(2)) + before}", e["description"], count=1)
            return {**e, "row": e["row"] + before, "description": description}
        return {**e, "row": e["row"] + piece.records_before}

    def add_missing_keys(self, keys):
        """Seed 000's words for field keys that no record of the file has."""
        if keys:
            self.file_level = [error(TRANSFORM_DATA, f"The field key '{key}' of the Data Format is missing from the "
                                                     "file.", column=key) for key in keys]

    def raise_any(self):
        for found in (self.file_level, self.structure, self.values):
            if found:
                raise IntakeError(sorted(found, key=lambda e: e["row"] or 0)[:MAX_ERRORS], total=len(found))


class _Accounts:
    """email → account id for the tenant, kept across pieces: each email is looked up (or its
    account created) once per file, as seed 000's processing does once per upload."""

    def __init__(self, fmt):
        self.fmt = fmt
        self.known = {}

    def ids(self, emails):
        wanted = [e for e in emails if e and e not in self.known]
        if wanted:
            self.known.update(self._select(wanted))
            missing = [e for e in wanted if e not in self.known]
            if missing:  # "reject" integrations refused unknown users when parsing: only "create" gets here
                Account.create_missing(self.fmt.tenant_id, missing)
                self.known.update(self._select(missing))
        return self.known

    def _select(self, emails):
        found = {}
        for start in range(0, len(emails), 2000):
            found.update(Account.objects.filter(tenant_id=self.fmt.tenant_id, email__in=emails[start:start + 2000])
                         .values_list("email", "id"))
        return found


class _Values:
    """The values of the pieces so far, combined per (metric, account, date) by the metric's
    aggregation; reduced whenever the new parts outgrow the total so far, so memory follows the
    number of distinct values, not the size of the file."""

    COMBINE = {"sum": "sum", "count": "sum", "max": "max", "min": "min", "last": "last"}
    KEY = ["metric_id", "account_id", "date"]

    def __init__(self, metrics):
        self.how = {m.pk: self.COMBINE[m.aggregation] for m in metrics}
        self.parts, self.rows, self.reduced = [], 0, 0

    def add(self, values):
        self.parts.append(values)
        self.rows += len(values)
        if self.rows > 2 * self.reduced:  # as soon as the parts outweigh the total (measured: 435 → 320 MB peak)
            self._reduce()

    def _reduce(self):
        if len(self.parts) < 2:
            return
        frame = pd.concat(self.parts, ignore_index=True)  # in file order: "last" takes the later piece's
        combined = []
        for how in set(self.how.values()):
            ids = [pk for pk, h in self.how.items() if h == how]
            part = frame[frame["metric_id"].isin(ids)]
            combined.append(part.groupby(self.KEY, sort=False, as_index=False)["value"].agg(how))
        self.parts = [pd.concat(combined, ignore_index=True)]
        self.rows = self.reduced = len(self.parts[0])

    def result(self):
        if not self.parts:
            return pd.DataFrame(columns=[*self.KEY, "value"])
        self._reduce()
        return self.parts[0].sort_values(self.KEY, ignore_index=True)
