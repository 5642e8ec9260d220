"""In a real browser: an upload's page follows its processing without a reload."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from integrations import services
from tests.conftest import PASSWORD
from uploads import processing
from uploads.models import Upload

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GOOD_CSV = b"email,date,calls,talk_minutes,deals\nann@x.com,8/16/2016,3,10,1\nbob@x.com,8/16/2016,2,5,0\n"


def test_the_upload_page_updates_itself_when_processing_ends(page, tenant, editor, owner, activity_integration):
    # Upload 1 failed processing out of Sandbox Mode, so the one sent now waits while its page is open.
    services.set_sandbox(activity_integration, owner, False)
    first = Upload.objects.create(
        tenant=tenant, integration=activity_integration, channel="web", content_type="text/csv", status="failed",
        sandbox=False, errors=[{"id": "import_transform_data", "description": "x", "row": 1, "column": "calls"}])
    page.goto("/login/")
    page.get_by_label("Username").fill(editor.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(reverse("upload_create", args=[tenant.slug]))
    page.get_by_label("Integration").select_option(str(activity_integration.pk))
    page.get_by_label("File").set_input_files(files=[{"name": "a.csv", "mimeType": "text/csv", "buffer": GOOD_CSV}])
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("[data-field=status_display]")).to_have_text("Waiting behind a failed upload")
    page.evaluate("window.notReloaded = true")

    processing.skip_upload(first, owner)  # an editor elsewhere lets it through

    expect(page.locator("[data-field=status_display]")).to_have_text("Processed")
    expect(page.locator("[data-field=values_written]")).to_have_text("6")
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    assert page.evaluate("window.notReloaded") is True
