"""A tenant admin's experience, in a real browser, on a laptop (1366 px) and a phone (390 px).

- a client's refused requests are in the history, with what was answered;
- a refused file's errors come grouped by cause, and every one downloads as CSV beside its row;
- a new integration says what to do next, hands out a sample file, and its values have charts;
- Sandbox Mode off asks first, with what starts counting;
- an outbound upload's page follows its sends live: the call list, the countdown, Send now.

Screenshots of the dashboard, the history, an upload with errors, an outbound upload and an
integration page land in test-artifacts/admin/<width>/ for a person to look at.
"""

import csv
import datetime
import io
import json
import re
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from playwright.sync_api import expect

from integrations import services
from integrations.models import Integration
from tests.conftest import PASSWORD
from uploads.delivery.dispatch import run_attempt
from uploads.intake import receive
from uploads import processing
from uploads.models import Dispatch, MetricValue, Upload

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "admin"
WIDTHS = {"laptop": (1366, 900), "phone": (390, 844)}
HEADER = "email,date,calls,talk_minutes,deals\n"
VENDOR_PATH = "/api/v1/data/calls/"


@pytest.fixture(params=list(WIDTHS))
def width(request, page):
    size = WIDTHS[request.param]
    page.set_viewport_size({"width": size[0], "height": size[1]})
    return size[0]


def shoot(page, width, name):
    folder = ARTIFACTS / str(width)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name} scrolls sideways at {width} px"


def sign_in(page, username="olivia"):
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Acme")  # the dashboard is where one lands


def open_menu(page, width):
    """On a phone the navigation folds behind the Menu button."""
    button = page.get_by_role("button", name="Menu")
    if width < 700 and button.get_attribute("aria-expanded") != "true":
        button.click()


def go(page, width, link):
    open_menu(page, width)
    page.get_by_role("navigation", name="Main").get_by_role("link", name=link).click()


def csv_lines(download):
    return list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))


def refused_posts(token):
    """A client failing four ways at the data endpoint, then getting it right once."""
    client = Client(REMOTE_ADDR="203.0.113.7")
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    good = json.dumps([{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"}])
    client.post("/api/v1/data/calls/", '[{"email": "a@x.com",', content_type="application/json", **auth)
    client.post("/api/v1/data/calls/", json.dumps([{"email": "a@x.com", "date": "2026-11-01", "calls": "many"}]),
                content_type="application/json", **auth)
    client.post("/api/v1/data/calls", good, content_type="application/json", **auth)
    client.post("/api/v1/data/calls/", "email,date,calls\na@x.com,8/16/2016,3\n", content_type="text/csv", **auth)
    client.post("/api/v1/data/calls/", good, content_type="application/json", **auth)


@pytest.fixture
def acme(tenant, owner, calls_integration, activity_integration):
    """A tenant with a history: values over three weeks, a client failing at the data endpoint,
    and an upload that failed out of Sandbox Mode with uploads waiting behind it."""
    token = services.regenerate_integration_token(calls_integration, owner)
    services.regenerate_integration_token(activity_integration, owner)
    today = datetime.date.today()
    rows = "".join(f"{user}@yourcompany.com,{(today - datetime.timedelta(days=d)):%-m/%-d/%Y},{(d * 7 + i) % 13},"
                   f"{20 + d},{d % 3}\n" for d in range(21) for i, user in enumerate(["jason", "maria", "li"]))
    receive(activity_integration, (HEADER + rows).encode(), channel="api", content_type="text/csv",
            submitted_via="AUTH_TOKEN 1a2b3c4d", filename="activity-3-weeks.csv")
    refused_posts(token)
    services.set_sandbox(activity_integration, owner, False)
    # Accepted, then the Data Format changed before it was processed: 150 dates it cannot read; the
    # upload after it waits behind it.
    failing = "".join(f"u{n}@yourcompany.com,{today:%-m/%-d/%Y},{n},1,1\n" for n in range(150))
    stored = []
    for name, body in [("activity-november.csv", HEADER + failing),
                       ("activity-next.csv", f"{HEADER}ann@x.com,{today:%Y-%m-%d},1,1,1\n")]:
        upload = Upload(tenant=tenant, integration=activity_integration, channel="web", submitted_via="olivia",
                        content_type="text/csv", filename=name, records=body.count("\n") - 1, size_bytes=len(body))
        upload.file.save(name, ContentFile(body.encode()))
        stored.append(upload)
    Integration.objects.filter(pk=activity_integration.pk).update(
        settings={**activity_integration.settings, "date_format": "YYYY-MM-DD"})
    for upload in stored:
        processing.process_upload(upload.pk)
    failed = stored[0]
    failed.refresh_from_db()
    assert failed.status == "failed" and Upload.objects.filter(status="waiting").count() == 1
    return {"tenant": tenant, "calls": calls_integration, "activity": activity_integration, "failed": failed,
            "token": token}


def test_a_clients_refused_requests_are_in_the_history(page, width, acme):
    sign_in(page)
    expect(page.locator(".attention")).to_contain_text("Upload #")  # the halted upload needs attention
    shoot(page, width, "dashboard")
    go(page, width, "Upload history")
    page.get_by_role("navigation", name="History").get_by_role("link", name="Failures").click()
    failures = page.locator("table.failures tbody tr")
    expect(failures.filter(has_text="Request refused (400)")).to_have_count(3)
    expect(failures.filter(has_text="Request refused (404)")).to_contain_text("trailing_slash_required")
    expect(failures.filter(has_text="Failed")).to_contain_text("Upload #")

    page.get_by_role("navigation", name="History").get_by_role("link", name="All requests").click()
    page.get_by_label("Integration").select_option(label="Calls")
    page.get_by_label("Answer").select_option(label="Refused (4xx)")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.requests tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.first).to_contain_text("import_transform_data")  # the wrong Content-Type, the last one sent
    expect(page.locator("table.requests")).to_contain_text("203.0.113.7")
    shoot(page, width, "history")
    rows.filter(has_text="This must be a number").locator("a").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Refused request to Calls")
    expect(page.locator("pre.excerpt")).to_contain_text('"calls": "many"')
    expect(page.locator("main")).to_contain_text("The date must look like 8/16/2016")
    assert acme["token"] not in page.content()


def test_a_refused_file_reports_its_errors_by_cause_and_downloads_every_one(page, width, acme):
    sign_in(page)
    go(page, width, "Upload a file")
    page.get_by_label("Integration").select_option(label="Calls")
    records = [{"email": f"u{n}@x.com", "date": "2026-11-01", "calls": "3"} for n in range(2000)]
    records[41]["calls"] = "=1+2"
    page.get_by_label("File").set_input_files(files=[{"name": "calls-november.json", "mimeType": "application/json",
                                                      "buffer": json.dumps(records).encode()}])
    page.get_by_role("button", name="Upload").click()
    refused = page.locator("section.refused")
    expect(refused).to_contain_text("calls-november.json was not accepted; nothing was stored.")
    expect(refused).to_contain_text("2,001 errors in 2,000 rows, of 2 kinds.")
    first = refused.locator("table.report tbody tr").first
    expect(first).to_contain_text("2,000")
    expect(first).to_contain_text("The date must look like 8/16/2016 (M/D/YYYY).")
    expect(first).to_contain_text("got “2026-11-01”")
    with page.expect_download() as info:
        refused.get_by_role("link", name="Download every error as CSV").click()
    lines = csv_lines(info.value)
    assert info.value.suggested_filename == "calls-november-errors.csv"
    assert len(lines) == 2001 and lines[0] == ["row", "email", "date", "calls", "errors"]
    assert lines[42] == ["42", "u41@x.com", "2026-11-01", "'=1+2",
                         "calls: This must be a number. | date: The date must look like 8/16/2016 (M/D/YYYY)."]
    assert not Upload.objects.filter(filename="calls-november.json").exists()

    # A file that failed after it was accepted: the same report, from its stored file.
    page.goto(acme["failed"].get_absolute_url())
    errors = page.locator("#errors")
    expect(errors).to_contain_text("150 errors in 150 rows.")
    expect(errors).to_contain_text("The date must look like 2016-08-16 (YYYY-MM-DD).")
    shoot(page, width, "upload-with-errors")
    with page.expect_download() as info:
        errors.get_by_role("link", name="Download every error as CSV").click()
    assert len(csv_lines(info.value)) == 151


def test_a_new_integration_says_what_to_do_next(page, width, tenant, owner):
    sign_in(page)
    page.get_by_role("link", name="New integration").first.click()
    page.locator("#id_name").fill("Deals")
    page.get_by_label("Data type").fill("deals")
    page.get_by_label("Data format").select_option("csv")
    page.get_by_label("Field keys").fill("email, date, deals, region")
    page.get_by_role("button", name="Create integration").click()
    checklist = page.locator(".checklist")
    expect(checklist.get_by_role("heading")).to_have_text("Set it up: 4 steps left")
    expect(checklist.locator("li")).to_have_text([re.compile(r"Generate the AUTH_TOKEN"), re.compile("Add metrics"),
                                                  re.compile("Send a test file"),
                                                  re.compile("Turn Sandbox Mode off")])

    checklist.get_by_role("link", name="Generate the AUTH_TOKEN").click()
    page.get_by_role("button", name="Generate AUTH_TOKEN").click()
    token = page.locator("#new-token").inner_text().strip()
    # The curl example has the integration's own endpoint and token, and names the sample file.
    expect(page.locator("#curl-example")).to_contain_text(f"Authorization: Token {token}")
    expect(page.locator("#curl-example")).to_contain_text("--data-binary @deals-sample.csv")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download deals-sample.csv").click()
    sample = Path(info.value.path()).read_bytes()
    assert sample.decode().splitlines()[0] == "email,date,deals,region"

    page.get_by_role("navigation", name="Integration").get_by_role("link", name="Metrics").click()
    page.get_by_label("Name").fill("deals")
    page.get_by_label("Source field key").select_option("deals")
    page.get_by_role("button", name="Add metric").click()
    page.get_by_role("navigation", name="Integration").get_by_role("link", name="Overview").click()
    expect(checklist.get_by_role("heading")).to_have_text("Set it up: 2 steps left")

    # The sample, sent as it is, is accepted and processed (the tasks run in-process here).
    checklist.get_by_role("link", name="Send a test file").click()
    page.get_by_label("File").set_input_files(files=[{"name": "deals-sample.csv", "mimeType": "text/csv",
                                                      "buffer": sample}])
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("[data-field=status_display]")).to_have_text("Processed")
    expect(page.locator("[data-field=values_written]")).to_have_text("3")

    page.get_by_role("link", name="Deals").first.click()
    expect(checklist.get_by_role("heading")).to_have_text("Set it up: 1 step left")
    shoot(page, width, "integration")
    page.get_by_role("navigation", name="Integration").get_by_role("link", name="Values").click()
    chart = page.locator("figure.chart").filter(has_text="deals")
    expect(chart.get_by_role("img")).to_have_attribute("aria-label", re.compile(r"^deals: daily totals of 1 day"))
    expect(page.locator("table.values tbody tr")).to_have_count(3)
    shoot(page, width, "integration-values")
    assert MetricValue.objects.count() == 3


def test_sandbox_off_asks_first_and_says_what_starts_counting(page, width, tenant, owner, calls_integration):
    body = json.dumps([{"email": f"u{n}@x.com", "date": "8/16/2016", "calls": "2"} for n in range(1200)]).encode()
    for _ in range(2):
        receive(calls_integration, body, channel="api", content_type="application/json")
    sign_in(page)
    page.goto(reverse("integration_settings", args=[tenant.slug, calls_integration.pk]))
    page.get_by_label("Sandbox Mode").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Turn Sandbox Mode off for “Calls”?")
    warning = page.locator(".sandbox-off")
    expect(warning).to_contain_text("2 uploads received in Sandbox Mode are not purged: 2,400 records, "
                                    "1,200 metric values.")
    shoot(page, width, "sandbox-off")
    warning.get_by_role("link", name="Keep Sandbox Mode on").click()
    assert Integration.objects.get(pk=calls_integration.pk).sandbox

    page.get_by_label("Sandbox Mode").uncheck()
    page.get_by_role("button", name="Save").click()
    page.get_by_role("button", name="Turn Sandbox Mode off").click()
    expect(page.get_by_role("status")).to_have_text("Sandbox Mode is off. Its values count now.")
    expect(page.locator("h1 .badge.sandbox")).to_have_count(0)
    assert not Integration.objects.get(pk=calls_integration.pk).sandbox


def test_an_outbound_upload_follows_its_sends_live(page, width, tenant, owner, httpserver, settings, broker):
    """The vendor fails once, then takes the file. The page is never reloaded: the call list, the
    countdown to the next attempt and, after Send now, the delivery come in by themselves."""
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    httpserver.expect_ordered_request(VENDOR_PATH, method="POST").respond_with_json(
        {"errors": [{"id": "busy", "description": "Try again later."}]}, status=503)
    httpserver.expect_ordered_request(VENDOR_PATH, method="POST").respond_with_json({"id": 9}, status=201)
    vendor = services.create_integration(
        tenant, owner, name="Vendor calls", direction="outbound", data_type="calls", data_format="json",
        field_keys=["email", "date", "calls"], endpoint_url=httpserver.url_for(VENDOR_PATH),
        credentials={"auth_token": "vendor-Secret-91d0c2aa7e"})
    services.set_sandbox(vendor, owner, False)
    upload = receive(vendor, b'[{"email": "a@x.com", "date": "8/16/2016", "calls": "3"}]',
                     content_type="application/json", channel="web", submitted_by=owner, submitted_via="olivia")
    dispatch = Dispatch.objects.get(upload=upload)

    sign_in(page)
    page.goto(upload.get_absolute_url())
    page.evaluate("window.notReloaded = true")
    calls = page.locator("#calls")
    expect(calls.locator("h3")).to_contain_text("Queued: a worker sends it shortly")

    run_attempt(dispatch.pk, 1)  # the worker's first attempt: 503
    expect(calls.locator("details.exchange summary")).to_contain_text("503")
    pending = calls.locator(".pending")
    expect(pending).to_contain_text("Attempt 1 of 5 failed; next attempt at")
    countdown = pending.locator(".countdown")
    expect(countdown).to_have_text(re.compile(r"^\(in \d+ s\)$"))
    first = countdown.inner_text()
    expect(countdown).not_to_have_text(first)  # it counts down
    expect(page.locator("[data-field=message]")).not_to_contain_text("Retrying in")
    shoot(page, width, "outbound-upload")

    pending.get_by_role("button", name="Send now").click()  # reloads the page, with a message
    expect(page.get_by_role("status")).to_have_text("The next attempt is being made now.")
    page.evaluate("window.notReloaded = true")
    run_attempt(dispatch.pk, 2)  # what Send now queued
    expect(page.locator("[data-field=status_display]")).to_have_text("Delivered", timeout=15_000)
    expect(calls.locator("details.exchange summary").last).to_contain_text("201")
    expect(calls.locator(".pending")).to_have_count(0)
    assert page.evaluate("window.notReloaded") is True
    assert len(httpserver.log) == 2
