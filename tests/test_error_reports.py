"""Error reports: errors grouped by cause with counts and the values found, in plain words, and
every error downloadable as CSV beside its original row, for refused and failed uploads alike."""

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from integrations import services
from integrations.models import Integration
from uploads import reports
from uploads.errors import IntakeError
from uploads.models import Upload

pytestmark = pytest.mark.django_db

HEADER = "email,date,calls,talk_minutes,deals\n"


def url(name, tenant, *args):
    return reverse(name, args=[tenant.slug, *args])


def send(client, tenant, integration, content, name="activity.csv"):
    return client.post(url("upload_create", tenant), {"integration": integration.pk,
                                                      "file": SimpleUploadedFile(name, content)})


def embedded_csv(page):
    """The report a refused upload's page carries (it is not stored anywhere)."""
    import html

    text = page.split('<textarea id="report-csv" hidden readonly>')[1].split("</textarea>")[0]
    return list(csv.reader(io.StringIO(html.unescape(text))))


@pytest.mark.parametrize("said,plain", [
    ("The date must be written as M/D/YYYY (%m/%d/%Y).", "The date must look like 8/16/2016 (M/D/YYYY)."),
    ("The date must be written as DD.MM.YYYY (%d.%m.%Y).", "The date must look like 16.08.2016 (DD.MM.YYYY)."),
    ("The CSV request body is improperly formatted: C error: Expected 5 fields in line 5, saw 6",
     "This row has 6 values, but the header names 5 columns."),
    ("The CSV request body is improperly formatted: C error: EOF inside string starting at row 3",
     "A quoted value is opened with a double quote and never closed."),
    ("Content-Type 'application/json' does not match this integration's Data Format (CSV); send text/csv "
     "or application/vnd.ms-excel.",
     "This integration takes CSV files, and this one was sent as JSON (Content-Type application/json). "
     "Send CSV, with Content-Type text/csv or application/vnd.ms-excel."),
    ("The JSON request body is improperly formatted: Expecting ',' delimiter (line 1, column 23).",
     "The file is not valid JSON: a comma is missing between two values (line 1, column 23)."),
    ("This must be a number.", "This must be a number."),  # already plain: kept
])
def test_library_messages_become_plain_words(said, plain):
    assert reports.plain(said) == plain


def test_the_form_groups_2000_bad_rows_with_the_value_found_and_offers_every_one_as_csv(
        editor_client, tenant, activity_integration):
    rows = [f"u{n}@x.com,{'2026-11-01' if n % 2 else '2026-11-02'},3,1,1" for n in range(2000)]
    rows[7] = "u7@x.com,8/16/2016,=HYPERLINK(\"http://evil\"),1,1"
    response = send(editor_client, tenant, activity_integration, (HEADER + "\n".join(rows) + "\n").encode())
    page = response.content.decode()
    assert response.status_code == 400 and Upload.objects.count() == 0
    assert "activity.csv was not accepted; nothing was stored." in page
    assert "<strong>2,000 errors</strong> in 2,000 rows, of 2 kinds." in page
    report = page.split('<table class="table stack report">')[1].split("</table>")[0]
    first, second = report.split("<tr>")[2:4]
    assert "<strong>1,999</strong>" in first and "The date must look like 8/16/2016 (M/D/YYYY)." in first
    assert "“<code>2026-11-02</code>”, “<code>2026-11-01</code>”" in first and "and 1,994 more" in first
    assert "<strong>1</strong>" in second and "This must be a number." in second and "row 8" in second
    assert "%m/%d/%Y" not in page and "C error" not in page

    lines = embedded_csv(page)
    assert lines[0] == ["row", "email", "date", "calls", "talk_minutes", "deals", "errors"]
    assert len(lines) == 2001
    assert lines[1] == ["1", "u0@x.com", "2026-11-02", "3", "1", "1",
                        "date: The date must look like 8/16/2016 (M/D/YYYY)."]
    # A value that a spreadsheet would run as a formula is quoted.
    assert lines[8][:4] == ["8", "u7@x.com", "8/16/2016", "'=HYPERLINK(\"http://evil\")"]


def test_a_refused_json_file_reports_the_values_of_its_flattened_keys(editor_client, tenant, owner):
    integration = services.create_integration(
        tenant, owner, name="Nested", data_type="nested", data_format="json", field_keys=["user.email", "date", "n"],
        user_key="user.email", date_key="date", metrics=[{"name": "n", "source_key": "n", "aggregation": "sum"}])
    body = json.dumps([{"user": {"email": "a@x.com"}, "date": "8/16/2016", "n": "x"},
                       {"user": {"email": "b@x.com"}, "date": "8/16/2016", "n": 2}]).encode()
    page = send(editor_client, tenant, integration, body, name="n.json").content.decode()
    lines = embedded_csv(page)
    assert lines[0] == ["row", "user.email", "date", "n", "errors"]
    assert lines[1] == ["1", "a@x.com", "8/16/2016", "x", "n: This must be a number."]
    assert "“<code>x</code>”" in page


def test_a_file_that_cannot_be_read_reports_its_one_error_in_plain_words(editor_client, tenant,
                                                                         activity_integration):
    body = (HEADER + "a@x.com,8/16/2016,3,1,1\nb@x.com,8/16/2016,3,1,1,9\n").encode()
    page = send(editor_client, tenant, activity_integration, body).content.decode()
    assert "This row has 6 values, but the header names 5 columns." in page and "C error" not in page
    lines = embedded_csv(page)
    assert lines[1] == ["2", "b@x.com", "8/16/2016", "3", "1", "1", "9",
                        "This row has 6 values, but the header names 5 columns."]


@pytest.mark.parametrize("value,safe", [
    ("=1+2", "'=1+2"), ("+1+2", "'+1+2"), ("-1+A1", "'-1+A1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1+2", "'\t=1+2"), ("\r=1+2", "'\r=1+2"), ("-3", "-3"), ("+4.5e3", "+4.5e3"), ("plain", "plain"),
    (None, ""), (7, "7"),
])
def test_csv_cells_are_safe_in_a_spreadsheet(value, safe):
    assert reports.safe_cell(value) == safe


@pytest.fixture
def failed_with_150_errors(editor_client, tenant, activity_integration, owner, django_capture_on_commit_callbacks):
    """Accepted, then the Data Format changed before processing: all 150 dates are wrong for it."""
    rows = "".join(f"u{n}@x.com,8/16/2016,{n},1,1\n" for n in range(150))
    with django_capture_on_commit_callbacks(execute=False) as pending:
        send(editor_client, tenant, activity_integration, (HEADER + rows).encode())
    services.update_integration(Integration.objects.get(pk=activity_integration.pk), owner,
                                {"date_format": "YYYY-MM-DD"})
    for callback in pending:
        callback()
    upload = Upload.objects.get()
    assert upload.status == "failed" and len(upload.errors) == 100  # what processing keeps
    return upload


def test_a_failed_upload_reports_every_error_from_its_stored_file(editor_client, tenant, failed_with_150_errors):
    upload = failed_with_150_errors
    page = editor_client.get(upload.get_absolute_url()).content.decode()
    assert "<strong>150 errors</strong> in 150 rows." in page
    assert "The date must look like 2016-08-16 (YYYY-MM-DD)." in page and "“<code>8/16/2016</code>”" in page
    response = editor_client.get(url("upload_errors_csv", tenant, upload.pk))
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(lines) == 151 and lines[150][:4] == ["150", "u149@x.com", "8/16/2016", "149"]


def test_slices_number_rows_as_the_whole_file_does(activity_integration):
    """The first errors found slice by slice are the ones the whole file's check lists."""
    rows = [f"u{n}@x.com,{'x' if n % 3 else '8/16/2016'},{'y' if n % 5 == 0 else n},1,1" for n in range(900)]
    body = ("\n" + HEADER + "\n".join(rows[:400]) + "\n\n" + "\n".join(rows[400:]) + "\n").encode()
    with pytest.raises(IntakeError) as whole:
        activity_integration.protocol_spec.check(activity_integration, io.BytesIO(body), "text/csv")
    table = reports.read_table(body, "text/csv")
    found, complete = reports.complete(activity_integration, table, "text/csv", whole.value)
    assert complete and len(found) == whole.value.total == 600 + 180
    listed = {(e["row"], e["column"]) for e in whole.value.errors}
    last = max(row for row, _ in listed)  # its row may have more errors than the list had room for
    assert listed <= {(e["row"], e["column"]) for e in found}
    assert {k for k in listed if k[0] < last} == {(e["row"], e["column"]) for e in found if e["row"] < last}


def test_past_its_time_a_report_says_it_is_not_complete(activity_integration):
    rows = "".join(f"u{n}@x.com,2026-01-01,3,1,1\n" for n in range(3000))
    body = (HEADER + rows).encode()
    with pytest.raises(IntakeError) as whole:
        activity_integration.protocol_spec.check(activity_integration, io.BytesIO(body), "text/csv")
    made = reports.of_file(activity_integration, body, "text/csv", whole.value, seconds=0)
    assert not made.complete and made.total == 3000 and len(made.errors) == 100
    assert "Only the first 100 of 3,000 errors could be listed." in list(made.csv_lines())[-1]
