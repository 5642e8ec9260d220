"""The Upload API's pages in a real browser (Debian's chromium, Playwright): the Credentials tab
issues the OAuth client and the API key, each shown once, and the secret it shows works at
the token endpoint; the Records tab shows what a submission became, with the records' ids."""

import base64
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from integrations import services
from integrations.protocols.upload_api import submissions
from integrations.protocols.upload_api.document import Submitted
from integrations.protocols.upload_api.models import TimeRecord
from portal.models import Membership
from tests.conftest import PASSWORD, make_user

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"

pytestmark = [
    pytest.mark.browser, pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"browser tests need Debian's chromium at {CHROMIUM}"),
]


@pytest.fixture
def in_browser(live_server):
    """in_browser(step) runs step(page) in a browser of this test's own, in a thread of its own: the
    browser tests' Playwright (tests/browser/) may be running in the main thread already, and a
    thread has one at most. The test's own database work stays in the main thread."""
    worker, held = ThreadPoolExecutor(max_workers=1), {}

    def start():
        held["playwright"] = sync_playwright().start()
        held["browser"] = held["playwright"].chromium.launch(executable_path=CHROMIUM, args=[
            "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        context = held["browser"].new_context(base_url=live_server.url, viewport={"width": 1280, "height": 860})
        context.set_default_timeout(10_000)
        held["page"] = context.new_page()

    def stop():
        held["browser"].close()
        held["playwright"].stop()

    worker.submit(start).result()
    yield lambda step: worker.submit(step, held["page"]).result()
    worker.submit(stop).result()
    worker.shutdown()


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_credentials_are_issued_once_and_the_records_tab_lists_what_came(in_browser, live_server, tenant):
    owner = make_user("olivia", tenant, Membership.Role.OWNER)
    hours = services.create_integration(tenant, owner, name="Hours", protocol="upload_api")
    credentials = f"/t/{tenant.slug}/integrations/{hours.pk}/credentials/"

    def generate_the_client(page):
        page.goto("/login/")
        page.get_by_label("Username").fill("olivia")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.goto(credentials)
        expect(page.locator("#token-url")).to_have_text(f"{live_server.url}/api/upload-api/token")
        page.get_by_role("button", name="Generate client ID and secret").click()
        expect(page.get_by_text("Copy this client secret now.")).to_be_visible()
        screenshot(page, "upload-api-01-client-secret-once")
        return page.locator("#client-id").inner_text(), page.locator("#new-client-secret").inner_text()

    client_id, secret = in_browser(generate_the_client)
    basic = base64.b64encode(f"{client_id}:{quote(secret, safe='')}".encode()).decode()
    token = requests.post(f"{live_server.url}/api/upload-api/token", timeout=30,
                          data={"grant_type": "client_credentials", "scope": "platform_upload_api"},
                          headers={"Authorization": f"Basic {basic}"})
    assert token.status_code == 200, token.text

    def regenerate_and_issue_the_key(page):
        page.reload()  # the address was replaced: a reload shows the tab, and never the secret again
        expect(page.locator("#new-client-secret")).to_have_count(0)
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Regenerate client secret").click()
        expect(page.locator("#new-client-secret")).not_to_have_text(secret)
        page.get_by_role("button", name="Generate API key").click()
        expect(page.locator("#new-token")).to_be_visible()
        expect(page.locator("#curl-sequence")).to_contain_text(f"CLIENT_ID={client_id}")

    in_browser(regenerate_and_issue_the_key)
    data = "Reference,StartDate,StartTime,EndDate,EndTime\r\njason@yourcompany.com,06/05/2024,09:00,06/05/2024,17:00"
    submission = submissions.submit(hours, Submitted("Week 19", data, "", False), owner)
    submissions.process_now(submission)
    record = TimeRecord.objects.get()

    def read_the_records(page):
        page.get_by_role("link", name="Records").click()
        expect(page.get_by_role("cell", name="Week 19", exact=True).first).to_be_visible()
        expect(page.get_by_text(submission.token)).to_be_visible()
        row = page.get_by_role("row").filter(has_text="jason@yourcompany.com").first
        expect(row.locator("td").first).to_have_text(str(record.pk))  # the record's id
        screenshot(page, "upload-api-02-records")

    in_browser(read_the_records)
