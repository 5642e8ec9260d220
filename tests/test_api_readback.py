"""Read-back API (/api/v3/uploads/, /api/v3/metric-values/), the OpenAPI schema and Swagger UI.

Data gets in through the front door: files POSTed to the API and processed by the task.
"""

import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from integrations import services
from integrations.models import ApiToken
from uploads.models import MetricValue


def auth(token):
    return {"Authorization": f"Token {token}"}


@pytest.fixture
def outsider_token(other_tenant, outsider):
    _, token = services.issue_api_token(other_tenant, outsider, "outsider", ApiToken.Scope.READ_WRITE)
    return token


@pytest.fixture
def send(client, api_token, django_capture_on_commit_callbacks):
    """POST a file to an integration through the API and let it be processed."""

    def send(integration, name, content, content_type):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/api/v3/integrations/{integration.pk}/uploads/",
                                   {"file": SimpleUploadedFile(name, content, content_type=content_type)},
                                   headers=auth(api_token))
        assert response.status_code == 201, response.content
        return response.json()

    return send


CALLS = b"""[
  {"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"},
  {"email": "Jason@YourCompany.com", "date": "8/16/2016", "calls": 2},
  {"email": "ann@yourcompany.com", "date": "8/17/2016", "calls": 5}
]"""

ACTIVITY = b"""email,date,calls,talk_minutes,deals
jason@yourcompany.com,8/15/2016,1,10,0
jason@yourcompany.com,8/16/2016,4,30.5,1
ann@yourcompany.com,8/18/2016,2,7,2
"""


@pytest.fixture
def data(send, owner, calls_integration, activity_integration):
    """`calls` stays in Sandbox Mode; `activity` leaves it after its file is processed."""
    calls = send(calls_integration, "calls.json", CALLS, "application/json")
    activity = send(activity_integration, "activity.csv", ACTIVITY, "text/csv")
    services.set_sandbox(activity_integration, owner, False)
    return {"calls": calls, "activity": activity}


def get(client, path, token, **params):
    response = client.get(path, params, headers=auth(token))
    return response


# --- /api/v3/uploads/ ------------------------------------------------------------------


def test_uploads_list_filtered_by_data_type(client, api_token, data):
    body = get(client, "/api/v3/uploads/", api_token).json()
    assert body["count"] == 2
    assert [u["data_type"] for u in body["results"]] == ["activity", "calls"]  # newest first

    body = get(client, "/api/v3/uploads/", api_token, data_type="calls").json()
    [upload] = body["results"]
    assert upload["id"] == data["calls"]["id"]
    assert upload["data_type"] == "calls"
    assert upload["direction"] == "inbound"
    assert upload["channel"] == "api"
    assert upload["status"] == "processed"
    assert upload["records"] == 3
    assert upload["values_written"] == 2  # jason's two rows of 8/16 are one value, summed
    assert upload["errors"] == []
    assert upload["sandbox"] is True
    assert upload["created"] and upload["finished"]
    assert "calls" not in upload  # the call log is on the detail

    assert get(client, "/api/v3/uploads/", api_token, data_type="nothing").json()["count"] == 0
    assert get(client, "/api/v3/uploads/", api_token, status="failed").json()["count"] == 0


def test_upload_detail_says_when_no_metrics_are_configured(client, api_token, send, tenant, owner):
    bare = services.create_integration(tenant, owner, name="Bare", data_type="bare", data_format="json",
                                       field_keys=["email", "date", "calls"])
    sent = send(bare, "calls.json", CALLS, "application/json")
    detail = get(client, f"/api/v3/uploads/{sent['id']}/", api_token).json()
    assert detail["id"] == sent["id"]
    assert detail["status"] == "processed"
    assert (detail["records"], detail["values_written"]) == (3, 0)
    assert detail["message"] == "records received, no metrics configured"
    assert detail["filename"] == "calls.json" and detail["size_bytes"] == len(CALLS)
    assert detail["calls"] == []


def test_another_tenant_sees_none_of_our_uploads(client, outsider_token, data):
    assert get(client, "/api/v3/uploads/", outsider_token).json()["count"] == 0
    assert get(client, "/api/v3/uploads/", outsider_token, data_type="calls").json()["count"] == 0
    assert get(client, f"/api/v3/uploads/{data['calls']['id']}/", outsider_token).status_code == 404
    response = client.post(f"/api/v3/uploads/{data['calls']['id']}/resend/", headers=auth(outsider_token))
    assert response.status_code == 404


def test_read_only_token_reads_uploads_but_cannot_resend(client, read_only_api_token, data):
    assert get(client, "/api/v3/uploads/", read_only_api_token).json()["count"] == 2
    response = client.post(f"/api/v3/uploads/{data['calls']['id']}/resend/", headers=auth(read_only_api_token))
    assert response.status_code == 403


def test_no_token_no_uploads(client, data):
    assert client.get("/api/v3/uploads/").status_code == 401
    assert client.get("/api/v3/metric-values/").status_code == 401


# --- /api/v3/metric-values/ ------------------------------------------------------------


def values(client, token, **params):
    response = get(client, "/api/v3/metric-values/", token, **params)
    assert response.status_code == 200, response.content
    return [(v["email"], v["date"], v["metric"], v["value"], v["data_type"]) for v in response.json()["results"]]


def test_out_of_sandbox_values_are_listed_without_naming_the_integration(client, api_token, data):
    listed = values(client, api_token)
    assert ("jason@yourcompany.com", "2016-08-16", "talk_minutes", 30.5, "activity") in listed
    assert {row[4] for row in listed} == {"activity"}  # nothing of the sandboxed `calls`
    assert len(listed) == 9


def test_sandbox_values_only_when_data_type_names_that_integration(client, api_token, data):
    assert values(client, api_token, data_type="calls") == [
        ("jason@yourcompany.com", "2016-08-16", "calls", 5.0, "calls"),
        ("ann@yourcompany.com", "2016-08-17", "calls", 5.0, "calls"),
    ]
    assert len(values(client, api_token, data_type="activity")) == 9
    assert values(client, api_token, data_type="nothing") == []


def test_values_filtered_by_email_and_dates(client, api_token, data):
    assert values(client, api_token, email="JASON@yourcompany.com", date_from="2016-08-16", date_to="2016-08-16") == [
        ("jason@yourcompany.com", "2016-08-16", "calls", 4.0, "activity"),
        ("jason@yourcompany.com", "2016-08-16", "deals", 1.0, "activity"),
        ("jason@yourcompany.com", "2016-08-16", "talk_minutes", 30.5, "activity"),
    ]
    assert [r[1] for r in values(client, api_token, date_from="2016-08-17")] == ["2016-08-18"] * 3
    assert [r[1] for r in values(client, api_token, date_to="2016-08-15")] == ["2016-08-15"] * 3
    assert values(client, api_token, email="nobody@yourcompany.com") == []


def test_bad_filters_are_400_with_field_messages(client, api_token, data):
    response = get(client, "/api/v3/metric-values/", api_token, date_from="8/16/2016")
    assert response.status_code == 400
    assert "date_from" in response.json()
    response = get(client, "/api/v3/metric-values/", api_token, date_from="2016-08-18", date_to="2016-08-01")
    assert response.status_code == 400
    assert response.json() == {"date_to": ["date_to is before date_from."]}


def test_values_leave_with_a_purge(client, api_token, data, calls_integration):
    assert values(client, api_token, data_type="calls")
    assert client.post(f"/api/v3/integrations/{calls_integration.pk}/purge/", headers=auth(api_token)).status_code == 200
    assert values(client, api_token, data_type="calls") == []
    assert get(client, f"/api/v3/uploads/{data['calls']['id']}/", api_token).json()["status"] == "purged"


def test_another_tenant_sees_none_of_our_values(client, outsider_token, data):
    assert MetricValue.objects.count() == 11
    assert values(client, outsider_token) == []
    assert values(client, outsider_token, data_type="calls") == []
    assert values(client, outsider_token, data_type="activity", email="jason@yourcompany.com") == []


def test_values_are_paginated(client, api_token, data):
    body = get(client, "/api/v3/metric-values/", api_token, limit=4).json()
    assert body["count"] == 9 and len(body["results"]) == 4 and "offset=4" in body["next"]


# --- Schema and Swagger UI (seed 001) ----------------------------------------------------

API_PATHS = {
    "/api/v3/integrations/": {"get", "post"},
    "/api/v3/integrations/{id}/": {"get", "patch", "delete"},
    "/api/v3/integrations/{id}/purge/": {"post"},
    "/api/v3/integrations/{id}/uploads/": {"post"},
    "/api/v3/uploads/": {"get"},
    "/api/v3/uploads/{id}/": {"get"},
    "/api/v3/uploads/{id}/resend/": {"post"},
    "/api/v3/metric-values/": {"get"},
}


def test_the_openapi_schema_lists_every_path(client, db):
    response = client.get("/api/v3/schema/", headers={"Accept": "application/json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path, methods in API_PATHS.items():
        assert path in schema["paths"], path
        assert set(schema["paths"][path]) >= methods, path
    assert not any(p.startswith("/api/v1/") for p in schema["paths"])  # seed 000's endpoint is its own
    assert schema["components"]["securitySchemes"]["tokenAuth"]["name"] == "Authorization"

    components = schema["components"]["schemas"]
    assert components["IntegrationRequest"]["properties"]["credentials"]["writeOnly"] is True
    assert "credentials" not in components["Integration"]["properties"]
    assert "calls" in components["UploadDetail"]["properties"]
    parameters = {p["name"] for p in schema["paths"]["/api/v3/metric-values/"]["get"]["parameters"]}
    assert {"data_type", "email", "date_from", "date_to"} <= parameters
    parameters = {p["name"] for p in schema["paths"]["/api/v3/uploads/"]["get"]["parameters"]}
    assert "data_type" in parameters


def test_swagger_ui_loads_from_our_own_static_files(client, db):
    response = client.get("/api/v3/schema/swagger-ui/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/api/v3/schema/" in page
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assets = [u for u in urls if u.endswith((".js", ".css"))]
    assert len(assets) >= 3
    for url in urls:
        assert url.startswith("/static/"), url  # no CDN
    for url in assets:
        assert client.get(url).status_code == 200, url


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"needs Debian's chromium at {CHROMIUM}")
def test_swagger_ui_renders_the_api_in_a_real_browser_without_leaving_the_site(live_server):
    # Its own thread: the browser tests keep a Playwright session open in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        text, requested = pool.submit(_open_swagger_ui, live_server.url).result()
    assert "Integration portal API" in text
    for path in ("/api/v3/integrations/", "/api/v3/uploads/", "/api/v3/metric-values/"):
        assert path in text
    assert requested
    outside = [url for url in requested if not url.startswith(live_server.url) and not url.startswith("data:")]
    assert outside == []  # no CDN, nothing fetched from anywhere else


def _open_swagger_ui(base_url):
    """The page's text once the operations are drawn, and every URL the browser asked for."""
    from playwright.sync_api import sync_playwright

    requested = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.goto(base_url + "/api/v3/schema/swagger-ui/")
            page.wait_for_selector(".opblock", timeout=15_000)
            return page.inner_text("body"), requested
        finally:
            browser.close()
