"""A tenant admin's first session, in a real browser: sign in, create an integration, read its
token once, toggle Sandbox Mode, purge with confirmation; and a viewer refused an edit.

Screenshots of the main pages land in test-artifacts/screenshots/ for a person to look at.
"""

import datetime
import hashlib
import re
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from playwright.sync_api import expect

from integrations.models import ApiToken, Integration, IntegrationToken
from portal.models import AuditEvent, Membership, Tenant
from tests.conftest import PASSWORD, make_user
from uploads.models import Account, MetricValue, Upload

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def acme():
    return Tenant.objects.create(slug="acme", name="Acme")


def sign_in(page, username, screenshot=None):
    page.goto("/login/")
    expect(page).to_have_title(re.compile("^Sign in"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    if screenshot:
        screenshot(page, "00-sign-in")
    page.get_by_role("button", name="Sign in").click()


def sandbox_badge(page, name):
    return page.get_by_role("row").filter(has_text=name).locator(".badge.sandbox")


def test_admin_creates_integration_reads_token_once_toggles_sandbox_and_purges(page, acme, screenshot):
    make_user("olivia", acme, Membership.Role.OWNER)
    sign_in(page, "olivia", screenshot)

    # An empty tenant says what to do next.
    expect(page.get_by_role("heading", name="Integrations")).to_be_visible()
    expect(page.get_by_text("No integrations yet.")).to_be_visible()
    screenshot(page, "01-integration-list-empty")

    # Create an integration through the form.
    page.get_by_role("link", name="New integration").click()
    page.locator("#id_name").fill("Calls")
    page.get_by_label("Data type").fill("calls")
    page.get_by_label("Data format").select_option("json")
    page.get_by_label("Field keys").fill("email, date, calls")
    screenshot(page, "02-integration-create")
    page.get_by_role("button", name="Create integration").click()
    expect(page.get_by_role("status")).to_have_text("Integration “Calls” created, in Sandbox Mode.")
    integration = Integration.objects.get(tenant=acme, key="calls")
    assert integration.sandbox and integration.settings["field_keys"] == ["email", "date", "calls"]
    screenshot(page, "03-integration-settings")

    # Credentials tab: generate the token, read it once; it matches the stored hash.
    page.get_by_role("link", name="Credentials").click()
    expect(page).to_have_title(re.compile("^Calls: Credentials"))
    expect(page.locator("#endpoint")).to_have_text(f"{page.url.split('/t/')[0]}/api/v1/data/calls/")
    expect(page.get_by_text("None yet: generate one below.")).to_be_visible()
    page.get_by_role("button", name="Generate AUTH_TOKEN").click()
    shown = page.locator("#new-token")
    expect(shown).to_be_visible()
    token = shown.inner_text().strip()
    stored = IntegrationToken.objects.get(integration=integration, revoked_at__isnull=True)
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    expect(page.get_by_text("Copy this AUTH_TOKEN now.")).to_be_visible()

    # The Copy button puts the token on the clipboard and says so.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    copy = page.locator(".once button.copy")  # by place, not by its label, which changes
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == token
    screenshot(page, "04-credentials-with-token")

    # Reloaded, the tab shows the token masked; the reload did not issue another one.
    page.reload()
    assert page.url.endswith(f"/integrations/{integration.pk}/credentials/")
    expect(page.locator("#new-token")).to_have_count(0)
    expect(page.locator("#masked-token")).to_have_text(stored.masked)
    assert token not in page.content()
    expect(page.get_by_role("button", name="Regenerate AUTH_TOKEN")).to_be_visible()
    assert list(IntegrationToken.objects.filter(integration=integration)) == [stored]
    screenshot(page, "05-credentials-masked")

    # Sandbox Mode off, Save: the badge leaves the list; on again, it comes back.
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Sandbox Mode").uncheck()
    page.get_by_role("button", name="Save").click()
    # Sandbox Mode off asks for confirmation first (tests/browser/test_admin_experience.py looks closer).
    expect(page.get_by_role("heading", level=1)).to_have_text("Turn Sandbox Mode off for “Calls”?")
    page.get_by_role("button", name="Turn Sandbox Mode off").click()
    expect(page.get_by_role("status")).to_have_text("Sandbox Mode is off. Its values count now.")
    expect(page.get_by_text("Purge All Data is only available in Sandbox Mode.")).to_be_visible()
    page.get_by_role("navigation").get_by_role("link", name="Integrations").click()
    expect(page.get_by_role("row").filter(has_text="Calls")).to_be_visible()
    expect(sandbox_badge(page, "Calls")).to_have_count(0)
    screenshot(page, "06-integration-list-sandbox-off")
    page.get_by_role("link", name="Calls").first.click()  # its overview, then its Settings tab
    page.get_by_role("navigation", name="Integration").get_by_role("link", name="Settings").click()
    page.get_by_label("Sandbox Mode").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    page.get_by_role("navigation").get_by_role("link", name="Integrations").click()
    expect(sandbox_badge(page, "Calls")).to_have_text("Sandbox Mode")
    screenshot(page, "07-integration-list")
    assert list(AuditEvent.objects.filter(integration=integration, action__startswith="sandbox")
                .values_list("action", flat=True).order_by("id")) == ["sandbox.disabled", "sandbox.enabled"]

    # Purge All Data, behind its confirmation page, deletes the processed values and the file.
    upload = Upload(tenant=acme, integration=integration, channel="api", status="processed", records=1,
                    sandbox=True)
    upload.file.save("calls.json", ContentFile(b'[{"email": "a@x.com", "date": "8/16/2016", "calls": "3"}]'))
    stored_file = Path(upload.file.path)
    assert stored_file.exists()
    metric = integration.metrics.create(name="calls", source_key="calls")
    MetricValue.objects.create(tenant=acme, integration=integration, metric=metric, upload=upload,
                               account=Account.objects.create(tenant=acme, email="a@x.com"),
                               date=datetime.date(2016, 8, 16), value=3)
    page.get_by_role("link", name="Calls").first.click()
    page.get_by_role("navigation", name="Integration").get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="Purge All Data").click()
    expect(page.get_by_role("heading")).to_have_text("Purge All Data of “Calls”?")
    expect(page.locator(".danger-zone")).to_contain_text("This deletes 1 processed metric value and")
    screenshot(page, "08-purge-confirmation")
    assert MetricValue.objects.filter(integration=integration).count() == 1  # nothing yet
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status")).to_have_text("Purged 1 metric value and 1 file from 1 upload.")
    assert not MetricValue.objects.filter(integration=integration).exists()
    upload.refresh_from_db()
    assert upload.status == Upload.Status.PURGED and not upload.file
    assert not stored_file.exists()

    # The Activity page tells the story, newest first.
    page.get_by_role("link", name="Activity").click()
    expect(page.get_by_role("heading", name="Activity")).to_be_visible()
    whats = page.locator("table tbody tr td:nth-child(3)").all_inner_texts()
    assert whats == ["All data purged", "Sandbox Mode enabled", "Sandbox Mode disabled",
                     "Integration token issued", "Integration created"]
    screenshot(page, "09-activity")


def test_tokens_and_upload_pages(page, acme, screenshot):
    make_user("olivia", acme, Membership.Role.OWNER)
    sign_in(page, "olivia")

    page.get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="Standard API Token Management")).to_be_visible()
    expect(page.get_by_text("No API tokens yet.")).to_be_visible()
    screenshot(page, "10-tokens-empty")
    page.get_by_role("link", name="Add New Token").click()
    page.locator("#id_name").fill("nightly export")
    screenshot(page, "11-token-form")
    page.get_by_role("button", name="Create New Token").click()
    expect(page.get_by_text("You will not be able to access this token again.")).to_be_visible()
    screenshot(page, "12-token-created")

    # Without clipboard permission granted, Copy still works and says so.
    copy = page.locator(".once button.copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    page.reload()  # shows the list, masked, and issues nothing more
    expect(page.get_by_role("heading", name="Standard API Token Management")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="nightly export")).to_contain_text("Active")
    assert ApiToken.objects.filter(tenant=acme).count() == 1
    screenshot(page, "13-tokens")

    page.get_by_role("link", name="Upload a file").click()
    expect(page.get_by_role("heading", name="Upload a file")).to_be_visible()
    screenshot(page, "14-upload-form-no-integration")
    page.get_by_role("link", name="Upload history").click()
    expect(page.get_by_role("heading", name="Upload history")).to_be_visible()
    expect(page.get_by_text("No uploads yet.")).to_be_visible()
    screenshot(page, "15-upload-history-empty")

    integration = Integration.objects.create(
        tenant=acme, name="Activity", key="activity", settings={"field_keys": ["email", "date", "calls"]})
    Upload.objects.create(tenant=acme, integration=integration, channel="api", status="processed",
                          records=3, values_written=3, size_bytes=120, submitted_via="AUTH_TOKEN 1a2b3c4d")
    page.get_by_role("link", name="Upload a file").click()
    screenshot(page, "16-upload-form")
    page.get_by_role("link", name="Upload history").click()
    expect(page.get_by_role("row").filter(has_text="AUTH_TOKEN 1a2b3c4d")).to_be_visible()
    screenshot(page, "17-upload-history")


def test_viewer_sees_but_is_refused_an_edit(page, acme, screenshot):
    make_user("vera", acme, Membership.Role.VIEWER)
    integration = Integration.objects.create(tenant=acme, name="Calls", key="calls", settings={"data_format": "json"})
    sign_in(page, "vera")

    expect(page.get_by_role("row").filter(has_text="Calls")).to_be_visible()
    expect(page.get_by_role("link", name="New integration")).to_have_count(0)
    page.get_by_role("link", name="View").click()
    expect(page.locator("#id_name")).to_be_disabled()
    expect(page.get_by_role("button", name="Save")).to_have_count(0)

    # Typing the edit address does not help.
    response = page.goto(f"/t/acme/integrations/{integration.pk}/delete/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Integrations: Edit")
    screenshot(page, "18-viewer-refused")
    assert Integration.objects.filter(pk=integration.pk).exists()
