"""Reference 001's scorecard page in a real browser (Debian's chromium, Playwright): the demo
tenant's scores as a table and an inline SVG chart; a screenshot lands in test-artifacts/."""

import json
import re
from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import expect


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_demo_scorecard_shows_scores_and_a_chart(page, live_server, screenshot):  # noqa: F811
    out = StringIO()
    call_command("demo", "--json", "--base-url", live_server.url, stdout=out)
    demo = json.loads(out.getvalue())
    page.goto("/login/")
    page.get_by_label("Username").fill(demo["username"])
    page.get_by_label("Password").fill(demo["password"])
    page.get_by_role("button", name="Sign in").click()

    page.goto(f"/t/{demo['tenant']}/scorecard/")
    expect(page.get_by_role("heading", name="Scorecard and scores")).to_be_visible()
    expect(page.locator("#scorecard-entries")).to_contain_text("calls")
    expect(page.locator("#team-scores")).to_contain_text("East")
    chart = page.locator("svg[role=img]")
    expect(chart).to_be_visible()
    assert chart.locator("polyline.series").count() == 2
    assert chart.bounding_box()["width"] > 300
    points = chart.locator('polyline[data-series="Activity"]').get_attribute("points").split()
    assert any(float(y) < 228 for _, y in (p.split(",") for p in points))  # some day above zero
    screenshot(page, "public-api-scorecard")

    page.goto(f"/t/{demo['tenant']}/accounts/")
    expect(page.get_by_role("row").filter(has_text="jason@yourcompany.com")).to_contain_text("maria")
    page.get_by_label("Search").fill("pri")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    assert re.search(r"priya", page.locator("tbody").inner_text())
    screenshot(page, "public-api-accounts")
