"""An admin sends a file to a vendor, in a real browser: create an outbound integration, dry-run a
file in Sandbox Mode, then send it for real to a vendor (pytest-httpserver) and read the
exchange on the upload's page: redacted, expandable. The vendor's token is on no page."""

import json

import pytest
from playwright.sync_api import expect

from portal.models import Membership, Tenant
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VENDOR_TOKEN = "vendor-Secret-91d0c2aa7e"
PATH = "/api/v1/data/calls/"
ROWS = json.dumps([{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"}]).encode()


def upload_file(page, integration_name):
    page.get_by_role("link", name="Upload a file").first.click()
    page.get_by_label("Integration").select_option(label=integration_name)
    page.get_by_label("File").set_input_files(files=[{"name": "calls.json", "mimeType": "application/json",
                                                      "buffer": ROWS}])
    page.get_by_role("button", name="Upload").click()


def test_admin_dry_runs_then_sends_a_file_and_reads_the_redacted_exchange(page, httpserver, settings, screenshot):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # the vendor is on loopback
    httpserver.expect_request(PATH, method="POST").respond_with_json({"id": 7, "status": "queued"}, status=201)
    acme = Tenant.objects.create(slug="acme", name="Acme")
    make_user("olivia", acme, Membership.Role.OWNER)
    page.goto("/login/")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Sign in").click()

    # An outbound integration: the vendor's endpoint (without its trailing slash) and token.
    page.get_by_role("link", name="New integration").click()
    page.locator("#id_name").fill("Vendor calls")
    expect(page.get_by_label("Vendor endpoint")).to_be_hidden()  # an inbound integration has no vendor
    page.get_by_label("Outbound (the portal sends to a vendor)").check()
    expect(page.get_by_text("nothing is sent to the vendor until you turn Sandbox Mode off")).to_be_visible()
    page.get_by_label("Data type").fill("calls")
    page.get_by_label("Data format").select_option("json")
    page.get_by_label("Field keys").fill("email, date, calls")
    page.get_by_label("Vendor endpoint").fill(httpserver.url_for(PATH.rstrip("/")))
    page.get_by_label("Vendor AUTH_TOKEN").fill(VENDOR_TOKEN)
    screenshot(page, "20-outbound-create")
    page.get_by_role("button", name="Create integration").click()
    expect(page.get_by_role("status")).to_contain_text("created, in Sandbox Mode")

    # In Sandbox Mode a file is a dry run: the request is logged, nothing is sent.
    upload_file(page, "Vendor calls")
    expect(page.get_by_role("heading", name="Calls to the vendor")).to_be_visible()
    exchange = page.locator("details.exchange").first
    expect(exchange).to_contain_text("dry run, not sent")
    exchange.locator("summary").click()
    expect(exchange).to_contain_text("Authorization: [redacted]")
    expect(exchange).to_contain_text(PATH)  # the trailing slash the client adds
    screenshot(page, "21-outbound-dry-run")
    assert len(httpserver.log) == 0

    # Out of Sandbox Mode the file goes to the vendor.
    page.get_by_role("link", name="Integrations").first.click()
    page.get_by_role("link", name="Vendor calls").click()  # its overview
    page.get_by_role("navigation", name="Integration").get_by_role("link", name="Settings").click()
    page.get_by_label("Sandbox Mode (dry run: nothing is sent)").uncheck()
    page.get_by_role("button", name="Save").click()
    # Sandbox Mode off is confirmed on its own page, which says what changes.
    expect(page.locator(".sandbox-off")).to_contain_text("Files are sent to the vendor for real")
    page.get_by_role("button", name="Turn Sandbox Mode off").click()
    upload_file(page, "Vendor calls")
    expect(page.locator(".calls h3").first).to_contain_text("Delivered")
    exchange = page.locator("details.exchange").first
    expect(exchange.locator("summary")).to_contain_text("201")
    exchange.locator("summary").click()
    expect(exchange).to_contain_text('"status": "queued"')
    screenshot(page, "22-outbound-delivered")

    assert len(httpserver.log) == 1
    request, _ = httpserver.log[0]
    assert request.headers["Authorization"] == f"Token {VENDOR_TOKEN}" and request.get_data() == ROWS
    assert VENDOR_TOKEN not in page.content()
    for link, heading in (("Upload history", "Upload history"), ("Activity", "Activity")):
        page.get_by_role("link", name=link, exact=True).first.click()
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        assert VENDOR_TOKEN not in page.content()


def test_the_upload_page_shows_the_vendors_answer_when_it_comes(page, httpserver, settings, broker):
    """While a file is being sent, its page polls; once delivered it shows the exchange without a reload.
    (The task goes to a broker that no worker reads; the test makes the attempt itself.)"""
    from integrations import services
    from uploads.delivery.dispatch import run_attempt
    from uploads.intake import receive
    from uploads.models import Dispatch

    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    httpserver.expect_request(PATH, method="POST").respond_with_json({"id": 8}, status=201)
    acme = Tenant.objects.create(slug="acme", name="Acme")
    owner = make_user("olivia", acme, Membership.Role.OWNER)
    integration = services.create_integration(
        acme, owner, name="Vendor calls", direction="outbound", data_type="calls", data_format="json",
        field_keys=["email", "date", "calls"], endpoint_url=httpserver.url_for(PATH),
        credentials={"auth_token": VENDOR_TOKEN})
    services.set_sandbox(integration, owner, False)
    upload = receive(integration, ROWS, content_type="application/json", channel="web", submitted_by=owner)

    page.goto("/login/")
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Sign in").click()
    page.goto(upload.get_absolute_url())
    expect(page.locator("[data-field=status_display]")).to_have_text("Sending")
    expect(page.locator(".calls h3")).to_contain_text("Queued: a worker sends it shortly")
    expect(page.locator("details.exchange")).to_have_count(0)

    run_attempt(Dispatch.objects.get(upload=upload).pk, 1)  # the worker makes the call

    expect(page.locator("[data-field=status_display]")).to_have_text("Delivered", timeout=15_000)
    expect(page.locator("details.exchange summary")).to_contain_text("201")
    assert VENDOR_TOKEN not in page.content()
