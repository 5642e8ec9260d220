"""A REST source's Entries tab in a real browser (Debian's chromium, Playwright): a viewer finds
what the source received, searches it and pages through the search.

The screenshot lands in test-artifacts/screenshots/ for a person to look at.
"""

import json
import re

import pytest
from playwright.sync_api import expect

from integrations import services
from portal.models import Membership, Tenant
from tests.conftest import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]  # skipped without chromium (conftest)


def test_a_viewer_reads_searches_and_pages_through_a_sources_entries(page, client, screenshot):
    acme = Tenant.objects.create(slug="acme", name="Acme")
    owner = make_user("olivia", acme, Membership.Role.OWNER)
    make_user("vera", acme, Membership.Role.VIEWER)
    source = services.create_integration(acme, owner, name="Feedback", protocol="source_import", source_id="src-1")
    key = services.regenerate_integration_token(source, owner)
    payload = [{"date": f"2024-03-08 {i // 60:02d}:{i % 60:02d}:00", "name": f"User {i:03d}",
                "content": "Asked about refunds" if i % 2 else f"Feedback {i}"} for i in range(120)]
    response = client.post("/api/v1/source/import", json.dumps({"source_id": "src-1", "payload": payload}),
                           content_type="application/json", HTTP_X_API_KEY=key)
    assert response.status_code == 200

    page.goto("/login/")
    page.get_by_label("Username").fill("vera")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/t/acme/integrations/{source.pk}/credentials/")
    page.get_by_role("link", name="See what this source received on the Entries tab").click()

    expect(page).to_have_title(re.compile("^Feedback: Entries"))
    expect(page.locator(".tabs a[aria-current]")).to_have_text("Entries")
    rows = page.locator("table.entries tbody tr")
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text("User 119")
    screenshot(page, "source-import-entries")

    page.get_by_label("Search names and contents").fill("REFUNDS")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("60 entries match “REFUNDS”")).to_be_visible()
    page.get_by_role("link", name="Older →").click()
    expect(page.get_by_text("Page 2 of 2")).to_be_visible()
    expect(rows).to_have_count(10)
    expect(page.get_by_label("Search names and contents")).to_have_value("REFUNDS")
    expect(rows.last).to_contain_text("User 001")

    page.get_by_role("link", name="Show all").click()
    expect(page.get_by_text("120 entries, newest first")).to_be_visible()
