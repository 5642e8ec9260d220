"""The API Tokens page in a real browser (Debian's chromium, driven by Playwright): a token made,
shown once, then only masked; the 6th refused with the words to revoke one; the way there from
the File Upload API integration's Credentials tab. Screenshots in test-artifacts/screenshots/."""

import pytest

from integrations.models import ApiToken
from integrations.protocols.file_upload import tokens
from tests.browser.conftest import SCREENSHOTS
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]  # skipped without chromium (conftest)


def shot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_api_tokens_page(page, tenant, owner, activity_integration):
    from playwright.sync_api import expect

    page.goto("/login/")
    page.get_by_label("Username").fill(owner.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"/t/{tenant.slug}/integrations/api-tokens/")
    page.get_by_role("link", name="New API Token").click()
    page.get_by_label("Description").fill("Nightly CRM export")
    page.get_by_label("Process CSV and JSON files into").select_option(label="Activity (activity, CSV)")
    page.get_by_role("button", name="Save").click()
    shown = page.locator("#new-token").inner_text()
    assert ApiToken.objects.find(shown).name == "Nightly CRM export"
    expect(page.get_by_text("It cannot be viewed again")).to_be_visible()
    shot(page, "file-upload-token-created")

    page.reload()  # the address is the list's now: the token is not shown again
    expect(page.get_by_role("heading", name="API Tokens")).to_be_visible()
    assert shown not in page.content() and ApiToken.objects.find(shown).masked in page.content()
    expect(page.locator("#step-two")).to_contain_text('curl -XPUT "<URL>" --upload-file <FILE_NAME>')
    shot(page, "file-upload-tokens")

    for n in range(4):
        tokens.issue(tenant, owner, f"token {n}")
    page.goto(f"/t/{tenant.slug}/integrations/api-tokens/new/")
    page.get_by_label("Description").fill("A sixth")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("revoke one first")
    shot(page, "file-upload-sixth-token-refused")

    integration = tenant.integrations.get(protocol="file_upload")
    page.goto(f"/t/{tenant.slug}/integrations/{integration.pk}/credentials/")
    page.get_by_role("link", name="API Tokens", exact=True).click()  # the nav's "API tokens" are Standard ones
    expect(page.get_by_text("5 of 5")).to_be_visible()
