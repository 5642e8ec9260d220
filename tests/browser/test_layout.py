"""Every page fits a phone (390 px) and a laptop (1366 px) without sideways scrolling.

A tenant owner with a realistic amount of data (three inbound uploads, one of them with
errors, an outbound upload with its call log, API tokens, activity) visits the portal's pages
at both widths. Nothing may make the page wider than the window: wide tables scroll inside
their own box or turn into cards, long URLs, tokens and curl examples wrap. On a phone the top
bar stays compact, its menu button opens the navigation, and without JavaScript the navigation
is simply shown.

Screenshots land in test-artifacts/layout/<width>/<page>.png, and the widths measured in
test-artifacts/layout/widths.json, for a person to look at.
"""

import datetime
import json
import re
from pathlib import Path

import pytest
from django.template import loader
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from integrations import services
from integrations.models import ApiToken
from tests.conftest import PASSWORD
from uploads.models import Account, MetricValue, RequestLog, Upload

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "layout"
PHONE, LAPTOP = (390, 844), (1366, 900)
TOP_BAR_MAX_HEIGHT = 64
LONG_PATH = "/api/v1/data/calls/with/a/rather/long/path/that/a/vendor/chose/for/its/endpoint/"

# Pages whose templates this change may not edit and which CSS alone cannot fix:
# {page name: why}. Their check is marked xfail with the reason rather than failing.
KNOWN_OVERFLOW = {}

# The outermost elements that stick out of the window, to say what overflows.
OVERFLOWING = """() => {
  const width = window.innerWidth, found = [];
  for (const el of document.querySelectorAll("body *")) {
    const right = el.getBoundingClientRect().right;
    const parent = el.parentElement.getBoundingClientRect().right;
    if (right > width + 0.5 && parent <= width + 0.5) {
      const cls = el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\\s+/).join(".") : "";
      found.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}${cls} (right ${Math.round(right)})`);
    }
  }
  return found.slice(0, 5);
}"""


@pytest.fixture
def data(tenant, owner, calls_integration, activity_integration, api_token, settings):
    """A tenant with what makes pages wide: uploads with errors and big counts, an outbound
    integration with a long endpoint and its call log, tokens live and revoked."""
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    services.regenerate_integration_token(calls_integration, owner)
    revoked, _ = services.issue_api_token(tenant, owner, "old nightly export to the data warehouse",
                                          ApiToken.Scope.READ)
    services.revoke_api_token(revoked, owner)
    services.issue_api_token(tenant, owner, "reporting dashboard", ApiToken.Scope.READ)

    started = timezone.now() - datetime.timedelta(minutes=5)
    common = {"tenant": tenant, "channel": "api", "submitted_via": "AUTH_TOKEN 1a2b3c4d",
              "content_type": "text/csv", "started_at": started,
              "finished_at": started + datetime.timedelta(seconds=12.437)}
    Upload.objects.create(integration=activity_integration, status="processed", records=12480,
                          values_written=37440, size_bytes=1_482_113, filename="activity-2026-11.csv", **common)
    Upload.objects.create(integration=calls_integration, status="processed", records=3, values_written=3,
                          size_bytes=120, filename="calls.json", sandbox=True,
                          **{**common, "content_type": "application/json"})
    errors = [{"id": "invalid_date", "row": row, "column": "date",
               "description": f"“16/08/2016” is not a date in the format M/D/YYYY (row {row}); "
                              "expected something like 8/16/2016."} for row in range(2, 9)]
    errors.append({"id": "missing_field", "row": 9, "column": "talk_minutes",
                   "description": "The field talk_minutes is missing; every record needs all the field keys."})
    failed = Upload.objects.create(
        integration=activity_integration, status="failed", records=1204, values_written=0, size_bytes=48_211,
        filename="activity-with-a-long-file-name-exported-from-the-crm-2026-11-23.csv", errors=errors,
        message="The file was refused: 8 errors. Nothing was stored.", **common)

    outbound = services.create_integration(
        tenant, owner, name="Vendor calls", direction="outbound", data_type="calls", data_format="json",
        field_keys=["email", "date", "calls"], endpoint_url=f"http://127.0.0.1:9{LONG_PATH}",
        credentials={"auth_token": "vendor-Secret-91d0c2aa7e"})
    sent = Upload.objects.create(integration=outbound, status="delivered", records=1, size_bytes=58,
                                 filename="calls.json", sandbox=True,
                                 **{**common, "channel": "web", "submitted_via": "olivia",
                                    "content_type": "application/json"})
    dispatch = sent.dispatches.create(tenant=tenant, status="dry_run", attempts=1, requested_by="olivia")
    body = json.dumps([{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"}] * 4)
    dispatch.calls.create(
        tenant=tenant, upload=sent, attempt=1, dry_run=True, method="POST", url=f"http://127.0.0.1:9{LONG_PATH}",
        request_headers={"Authorization": "[redacted]", "Content-Type": "application/json",
                         "User-Agent": "integration-portal/1.0 (+https://portal.example.com/docs/outbound-calls)"},
        request_body_size=len(body), request_body_sha256="9f" * 32, request_body_excerpt=body)
    # The request log: a client failing with long messages, and an accepted request.
    refused = RequestLog.objects.create(
        tenant=tenant, integration=calls_integration, protocol="data_integration", method="POST",
        path="/api/v1/data/calls-with-a-rather-long-data-type-name-from-the-crm", status_code=404,
        error_ids=["trailing_slash_required"], client_address="2001:db8:85a3::8a2e:370:7334",
        message="The ENDPOINT ends with a trailing '/': POST to http://127.0.0.1:8000/api/v1/data/"
                "calls-with-a-rather-long-data-type-name-from-the-crm/", size_bytes=1_482_113,
        excerpt='[{"email": "jason@yourcompany.com", "date": "2016-08-16T00:00:00.000000+00:00", "calls": "3"}]' * 4)
    RequestLog.objects.create(tenant=tenant, integration=activity_integration, channel="web", method="POST",
                              path=f"/t/{tenant.slug}/uploads/new/", status_code=400,
                              error_ids=["import_transform_data", "import_parse_csv"],
                              message="2,000 errors: date: The date must look like 8/16/2016 (M/D/YYYY).")
    RequestLog.objects.create(tenant=tenant, integration=calls_integration, channel="api", method="POST",
                              path="/api/v1/data/calls/", status_code=201, size_bytes=120)
    account = Account.objects.create(tenant=tenant, email="a-rather-long-address.of.someone@yourcompany.example.com")
    for day in range(30):
        MetricValue.objects.create(tenant=tenant, integration=activity_integration, account=account,
                                   metric=activity_integration.metrics.get(name="calls"), value=1000 + day * 37,
                                   date=datetime.date(2026, 10, 1) + datetime.timedelta(days=day))
    return {"tenant": tenant, "calls": calls_integration, "activity": activity_integration, "failed": failed,
            "outbound": outbound, "sent": sent, "refused": refused}


def sign_in(page, username="olivia"):
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Integrations")).to_be_visible()  # on the dashboard


def pages(data):
    """(name, URL) of the pages to check, in the order a person would meet them."""
    slug = data["tenant"].slug

    def url(name, *args):
        return reverse(name, args=[slug, *args])

    return [
        ("integrations", url("integration_list")),
        ("settings", url("integration_settings", data["activity"].pk)),
        ("metrics", url("integration_metrics", data["activity"].pk)),
        ("credentials", url("integration_credentials", data["calls"].pk)),
        ("outbound-settings", url("integration_settings", data["outbound"].pk)),
        ("outbound-credentials", url("integration_credentials", data["outbound"].pk)),
        ("upload-history", url("upload_history")),
        ("integration-uploads", url("integration_uploads", data["activity"].pk)),
        ("upload-detail", url("upload_detail", data["failed"].pk)),
        ("outbound-upload-detail", url("upload_detail", data["sent"].pk)),
        ("tokens", url("token_list")),
        ("activity", url("activity")),
        ("upload-form", url("upload_create")),
        ("dashboard", url("dashboard")),
        ("request-log", url("request_list")),
        ("failures", url("failures")),
        ("request-detail", url("request_detail", data["refused"].pk)),
        ("overview", url("integration_overview", data["calls"].pk)),
        ("outbound-overview", url("integration_overview", data["outbound"].pk)),
        ("values", url("integration_values", data["activity"].pk)),
        ("sandbox-off", url("integration_sandbox_off", data["calls"].pk)),
        ("purge", url("integration_purge", data["calls"].pk)),
        ("not-found", f"/t/{slug}/no-such-page/"),
    ]


def measure(page):
    return page.evaluate("() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})")


def shoot(page, width, name):
    folder = ARTIFACTS / str(width)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_no_page_scrolls_sideways_on_a_phone_or_a_laptop(page, data):
    sign_in(page)
    failures, widths, known = [], {}, []
    for width, height in (PHONE, LAPTOP):
        page.set_viewport_size({"width": width, "height": height})
        for name, url in pages(data):
            page.goto(url)
            # Open what a person would open: the call log's exchanges.
            for summary in page.locator("details.exchange > summary").all():
                summary.click()
            shoot(page, width, name)
            size = measure(page)
            widths.setdefault(name, {})[width] = size["scroll"]
            if size["scroll"] > size["inner"]:
                entry = f"{name} at {width} px: scrollWidth {size['scroll']} ({', '.join(page.evaluate(OVERFLOWING))})"
                (known if name in KNOWN_OVERFLOW else failures).append(entry)
        # The upload form refusing a file shows its errors in a table inside the form.
        page.goto(reverse("upload_create", args=[data["tenant"].slug]))
        page.get_by_label("Integration").select_option(label="Activity")
        page.get_by_label("File").set_input_files(files=[{
            "name": "activity.csv", "mimeType": "text/csv",
            "buffer": b"email,date,calls,talk_minutes,deals\n"
                      b"ann@x.com,16/08/2016,3,10,1\nbob@x.com,8/16/2016,x,5,0\n"}])
        page.get_by_role("button", name="Upload").click()
        expect(page.get_by_role("alert").first).to_be_visible()
        shoot(page, width, "upload-form-errors")
        size = measure(page)
        widths.setdefault("upload-form-errors", {})[width] = size["scroll"]
        if size["scroll"] > size["inner"]:
            failures.append(f"upload-form-errors at {width} px: scrollWidth {size['scroll']} "
                            f"({', '.join(page.evaluate(OVERFLOWING))})")
    (ARTIFACTS / "widths.json").write_text(json.dumps(widths, indent=1))
    assert not failures, "pages wider than the window:\n" + "\n".join(failures)
    if known:
        pytest.xfail("known, needs a template change: " + "; ".join(
            f"{entry} [{KNOWN_OVERFLOW[entry.split(' at ')[0]]}]" for entry in known))


def test_on_a_laptop_the_history_table_fits_and_dates_stay_on_one_line(page, data):
    sign_in(page)
    page.set_viewport_size({"width": LAPTOP[0], "height": LAPTOP[1]})
    page.goto(reverse("upload_history", args=[data["tenant"].slug]))
    table = page.locator("table.uploads")
    expect(table.locator("tbody tr")).to_have_count(4)
    fit = page.evaluate("""() => {
      const main = document.querySelector("main"), style = getComputedStyle(main);
      const inner = main.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      const table = document.querySelector("table.uploads").getBoundingClientRect().width;
      const lines = [...document.querySelectorAll("table.uploads tbody time")].map((t) => t.getClientRects().length);
      return {inner, table, lines};
    }""")
    assert fit["table"] <= fit["inner"] + 0.5, fit
    assert fit["lines"] == [1, 1, 1, 1], fit
    # Counts read with thousands separators, dates in the short format.
    row = table.locator("tbody tr").filter(has_text="1.4 MB")  # 12480 records, 37440 values
    expect(row).to_contain_text("12,480")
    expect(row).to_contain_text("37,440")
    expect(row.locator("time")).to_have_text(re.compile(r"^\d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}$"))


def test_on_a_phone_the_top_bar_is_compact_and_its_menu_button_opens_the_navigation(page, data):
    sign_in(page)
    page.set_viewport_size({"width": PHONE[0], "height": PHONE[1]})
    page.goto(reverse("upload_history", args=[data["tenant"].slug]))
    bar = page.locator("header.topbar")
    button = page.get_by_role("button", name="Menu")
    nav = page.get_by_role("navigation", name="Main")
    expect(button).to_be_visible()
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(nav).to_be_hidden()
    assert bar.bounding_box()["height"] <= TOP_BAR_MAX_HEIGHT, bar.bounding_box()
    shoot(page, PHONE[0], "menu-closed")

    button.click()
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(nav).to_be_visible()
    expect(nav.get_by_role("link", name="API tokens")).to_be_visible()
    assert measure(page)["scroll"] <= PHONE[0]
    shoot(page, PHONE[0], "menu-open")
    nav.get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="Standard API Token Management")).to_be_visible()
    expect(page.get_by_role("button", name="Menu")).to_have_attribute("aria-expanded", "false")

    button.click()
    page.keyboard.press("Escape")  # closes it again, back on the button
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(nav).to_be_hidden()

    # On a laptop there is no menu button: the navigation is always there.
    page.set_viewport_size({"width": LAPTOP[0], "height": LAPTOP[1]})
    expect(button).to_be_hidden()
    expect(nav).to_be_visible()
    assert bar.bounding_box()["height"] <= TOP_BAR_MAX_HEIGHT


def test_without_javascript_the_phone_shows_the_navigation(browser, live_server, data):
    context = browser.new_context(base_url=live_server.url, viewport={"width": PHONE[0], "height": PHONE[1]},
                                  java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page)
        nav = page.get_by_role("navigation", name="Main")
        expect(nav).to_be_visible()
        expect(page.get_by_role("button", name="Menu")).to_be_hidden()
        assert measure(page)["scroll"] <= PHONE[0]
        shoot(page, PHONE[0], "no-javascript")
    finally:
        context.close()


def test_the_error_pages_say_what_to_do_next(page, data):
    sign_in(page)
    for width, height in (PHONE, LAPTOP):
        page.set_viewport_size({"width": width, "height": height})
        response = page.goto(f"/t/{data['tenant'].slug}/no-such-page/")
        assert response.status == 404
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
        expect(page.locator("main").get_by_role("link", name=re.compile("integrations", re.I))).to_be_visible()

    # Django renders 500.html with an empty context (no request, no user): it must stand alone.
    html = loader.get_template("500.html").render()
    assert "{%" not in html and 'href="/"' in html
    for width, height in (PHONE, LAPTOP):
        page.set_viewport_size({"width": width, "height": height})
        page.set_content(html)
        expect(page.get_by_role("heading", name="Something went wrong")).to_be_visible()
        assert measure(page)["scroll"] <= width
        shoot(page, width, "server-error")
