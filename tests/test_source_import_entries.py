"""What REST sources received, read back: GET /api/v3/feedback/ and a source's Entries tab.

Entries get in through the front door (POST /api/v1/source/import with the source's API key,
tasks run eagerly); they are read with a Standard API token and in the pages.
"""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from integrations import services
from integrations.models import ApiToken
from integrations.protocols.source_import.models import FeedbackEntry

FEED = "/api/v3/feedback/"


def auth(token):
    return {"Authorization": f"Token {token}"}


def entry(date, name, content=None):
    return {"date": date, "name": name, "content": content or f"Feedback from {name}"}


@pytest.fixture
def send(client, django_capture_on_commit_callbacks):
    """POST an import request with a source's API key and let it be processed."""

    def send(key, source_id, payload):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/api/v1/source/import", json.dumps({"source_id": source_id, "payload": payload}),
                                   content_type="application/json", HTTP_X_API_KEY=key)
        assert response.status_code == 200, response.content

    return send


def rest_source(tenant, actor, source_id, sandbox=False):
    """A REST source and its API key; out of Sandbox Mode unless asked."""
    source = services.create_integration(tenant, actor, name=f"Source {source_id}", protocol="source_import",
                                         source_id=source_id)
    if not sandbox:
        services.set_sandbox(source, actor, False)
    return source, services.regenerate_integration_token(source, actor)


@pytest.fixture
def outsider_token(other_tenant, outsider):
    _, token = services.issue_api_token(other_tenant, outsider, "outsider", ApiToken.Scope.READ)
    return token


@pytest.fixture
def feedback(tenant, owner, other_tenant, outsider, send):
    """Acme: live sources src-1 (three entries over three days) and src-2 (one), and "trial" in
    Sandbox Mode (one). Globex has a live source also called src-1, with an entry of its own."""
    src1, key1 = rest_source(tenant, owner, "src-1")
    src2, key2 = rest_source(tenant, owner, "src-2")
    trial, trial_key = rest_source(tenant, owner, "trial", sandbox=True)
    theirs, their_key = rest_source(other_tenant, outsider, "src-1")
    send(key1, "src-1", [entry("2024-03-07 23:59:59", "Ann"), entry("2024-03-08 00:00:00", "Bob"),
                         entry("2024-03-09 12:00:00", "Cy")])
    send(key2, "src-2", [entry("2024-03-08 09:30:00", "Dee")])
    send(trial_key, "trial", [entry("2024-03-08 10:00:00", "Tess")])
    send(their_key, "src-1", [entry("2024-03-08 11:00:00", "Globex person")])
    return {"src-1": src1, "src-2": src2, "trial": trial, "theirs": theirs}


def names(client, token, path=FEED, **query):
    response = client.get(path, query, headers=auth(token))
    assert response.status_code == 200, response.content
    return [item["name"] for item in response.json()["results"]]


# --- GET /api/v3/feedback/ ------------------------------------------------------------------------


def test_the_list_holds_the_tenants_live_entries_newest_first(client, api_token, feedback):
    response = client.get(FEED, headers=auth(api_token))

    assert response.status_code == 200
    body = response.json()
    assert [item["name"] for item in body["results"]] == ["Cy", "Dee", "Bob", "Ann"]
    assert (body["count"], body["next"], body["previous"]) == (4, None, None)
    stored = FeedbackEntry.objects.get(name="Dee")
    assert body["results"][1] == {
        "id": stored.pk, "source_id": "src-2", "integration": feedback["src-2"].pk, "date": "2024-03-08T09:30:00Z",
        "name": "Dee", "content": "Feedback from Dee", "upload": stored.upload_id,
        "received": stored.created_at.isoformat().replace("+00:00", "Z")}


@pytest.mark.parametrize("query, expected", [
    ({"source_id": "src-1"}, ["Cy", "Bob", "Ann"]),
    ({"source_id": "src-2"}, ["Dee"]),
    ({"source_id": "nowhere"}, []),
    # Whole UTC days, inclusive at both ends: 23:59:59 the day before and 00:00:00 the day after are out.
    ({"date_from": "2024-03-08"}, ["Cy", "Dee", "Bob"]),
    ({"date_to": "2024-03-08"}, ["Dee", "Bob", "Ann"]),
    ({"date_from": "2024-03-08", "date_to": "2024-03-08"}, ["Dee", "Bob"]),
    ({"date_from": "2024-03-10"}, []),
    ({"source_id": "src-1", "date_from": "2024-03-08", "date_to": "2024-03-08"}, ["Bob"]),
])
def test_the_filters(client, api_token, feedback, query, expected):
    assert names(client, api_token, **query) == expected


@pytest.mark.parametrize("query, field, said", [
    ({"date_from": "08/03/2024"}, "date_from", "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."),
    ({"date_to": "2024-02-30"}, "date_to", "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."),
    ({"date_from": "2024-03-09", "date_to": "2024-03-08"}, "date_to", "date_to is before date_from."),
    ({"limit": "0"}, "limit", "A whole number from 1 to 1,000."),
    # The schema says a filter's value is not empty: "?source_id=" names no source, and is refused.
    ({"source_id": ""}, "source_id", "This field may not be blank."),
    ({"date_from": ""}, "date_from", "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."),
    ({"offset": "-1"}, "offset", "A whole number from 0 to 9,007,199,254,740,992."),
])
def test_a_bad_filter_is_a_400_naming_it(client, api_token, feedback, query, field, said):
    response = client.get(FEED, query, headers=auth(api_token))

    assert response.status_code == 400
    assert response.json() == {field: [said]}


def test_pages_of_limit_and_offset_walk_all_entries_once_in_order(client, api_token, tenant, owner, send):
    _, key = rest_source(tenant, owner, "src-1")
    # 130 entries, many sharing a date: the id breaks ties, so no entry is on two pages or on none.
    send(key, "src-1", [entry(f"2024-03-{1 + i % 5:02d} 08:00:00", f"User {i:03d}") for i in range(130)])

    first = client.get(FEED, headers=auth(api_token)).json()
    assert (first["count"], len(first["results"]), first["previous"]) == (130, 100, None)
    assert first["next"] == "http://testserver/api/v3/feedback/?limit=100&offset=100"
    walked = []
    for offset in range(0, 130, 40):
        page = client.get(FEED, {"limit": 40, "offset": offset}, headers=auth(api_token)).json()
        walked += [(item["date"], item["id"]) for item in page["results"]]
    assert len(walked) == 130 == len(set(walked))
    assert walked == sorted(walked, reverse=True)
    assert page["next"] is None and len(page["results"]) == 10


def test_a_page_costs_the_same_queries_however_many_sources_it_shows(client, api_token, tenant, owner, send):
    def queries():
        with CaptureQueriesContext(connection) as done:
            body = client.get(FEED, headers=auth(api_token)).json()
        return len(done), {item["source_id"] for item in body["results"]}

    _, key = rest_source(tenant, owner, "src-0")
    send(key, "src-0", [entry("2024-03-08 00:00:00", f"User 0.{i}") for i in range(100)])
    queries()  # the token's first use of the minute is recorded on it
    one_source = queries()
    for n in range(1, 5):
        _, key = rest_source(tenant, owner, f"src-{n}")
        send(key, f"src-{n}", [entry("2024-03-09 00:00:00", f"User {n}.{i}") for i in range(25)])

    assert queries() == (one_source[0], {"src-1", "src-2", "src-3", "src-4"})


def test_another_tenants_token_sees_none_of_our_entries(client, outsider_token, api_token, feedback):
    # Both tenants have a source called src-1: each token sees its own tenant's, and only that.
    assert names(client, outsider_token) == ["Globex person"]
    assert names(client, outsider_token, source_id="src-1") == ["Globex person"]
    assert names(client, api_token, source_id="src-1") == ["Cy", "Bob", "Ann"]
    # A source only another tenant has is a source that does not exist: an empty list, not a 404.
    assert names(client, outsider_token, source_id="src-2") == []
    assert names(client, outsider_token, source_id="trial") == []
    assert names(client, outsider_token, source_id="nowhere") == []


def test_a_sandboxed_sources_entries_are_listed_only_when_it_is_named(client, api_token, owner, feedback):
    assert "Tess" not in names(client, api_token)
    assert "Tess" not in names(client, api_token, date_from="2024-03-08", date_to="2024-03-08")
    assert names(client, api_token, source_id="trial") == ["Tess"]

    services.set_sandbox(feedback["trial"], owner, False)
    assert names(client, api_token) == ["Cy", "Tess", "Dee", "Bob", "Ann"]


def test_a_renamed_source_keeps_its_entries_under_its_new_source_id(client, api_token, owner, feedback):
    services.update_integration(feedback["src-2"], owner, {"source_id": "reviews"})

    response = client.get(FEED, {"source_id": "reviews"}, headers=auth(api_token)).json()
    assert [(item["name"], item["source_id"]) for item in response["results"]] == [("Dee", "reviews")]
    assert names(client, api_token, source_id="src-2") == []


def test_it_needs_a_standard_api_token_and_any_scope_may_read(client, owner, read_only_api_token, feedback):
    assert client.get(FEED).status_code == 401
    api_key = services.regenerate_integration_token(feedback["src-1"], owner)
    assert client.get(FEED, headers=auth(api_key)).status_code == 401  # a REST source's API key is not one
    assert names(client, read_only_api_token) == ["Cy", "Dee", "Bob", "Ann"]


def test_without_the_trailing_slash_it_is_the_same_list_and_it_is_read_only(client, api_token, feedback):
    with_slash = client.get(FEED, {"source_id": "src-1"}, headers=auth(api_token))
    without = client.get(FEED.rstrip("/"), {"source_id": "src-1"}, headers=auth(api_token))

    assert without.status_code == 200 and without.json() == with_slash.json()
    for path in (FEED, FEED.rstrip("/")):
        assert client.post(path, {}, headers=auth(api_token)).status_code == 405
        assert client.delete(path, headers=auth(api_token)).status_code == 405


def test_the_schema_documents_the_list_and_its_filters(client):
    schema = client.get("/api/v3/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    operation = schema["paths"]["/api/v3/feedback/"]["get"]
    assert "/api/v3/feedback" not in schema["paths"]
    assert {p["name"] for p in operation["parameters"]} == {"source_id", "date_from", "date_to", "limit", "offset"}
    described = {p["name"]: p for p in operation["parameters"]}
    assert described["date_from"]["schema"] == {"type": "string", "format": "date"}
    assert "Sandbox Mode" in described["source_id"]["description"]
    assert set(schema["components"]["schemas"]["FeedbackEntry"]["properties"]) == {
        "id", "source_id", "integration", "date", "name", "content", "upload", "received"}


# --- The Entries tab ------------------------------------------------------------------------------


def entries_url(tenant, source):
    return reverse("source_import_entries", args=[tenant.slug, source.pk])


def rows(page):
    return page.count('<td data-label="Name"')


@pytest.fixture
def many(tenant, owner, send):
    """A REST source with 120 entries, one a minute, three of them about "Refunds"."""
    source, key = rest_source(tenant, owner, "src-1")
    payload = [entry(f"2024-03-08 {i // 60:02d}:{i % 60:02d}:00", f"User {i:03d}",
                     "Asked about REFUNDS again" if i in (5, 70, 110) else f"Feedback {i}") for i in range(120)]
    send(key, "src-1", payload)
    return source


def test_a_rest_source_has_an_entries_tab_newest_first_fifty_a_page(client, viewer, tenant, many):
    client.force_login(viewer)  # a viewer reads it
    first = client.get(entries_url(tenant, many))

    assert first.status_code == 200
    page = first.content.decode()
    assert f'href="{entries_url(tenant, many)}" aria-current="page">Entries</a>' in page
    assert "120 entries, newest first" in page and "Page 1 of 3" in page
    assert rows(page) == 50
    assert page.index("User 119") < page.index("User 118") and "User 069" not in page
    assert "2024-03-08 01:59:00" in page

    last = client.get(entries_url(tenant, many), {"page": 3}).content.decode()
    assert rows(last) == 20 and "User 019" in last and "User 000" in last and "User 020" not in last


def test_the_search_finds_names_and_contents_in_any_case_and_keeps_to_it_across_pages(client, owner, tenant, many):
    client.force_login(owner)
    found = client.get(entries_url(tenant, many), {"q": " refunds "}).content.decode()

    assert "3 entries match “refunds”" in found and rows(found) == 3
    assert [found.index(f"User {n}") for n in ("110", "070", "005")] == sorted(
        found.index(f"User {n}") for n in ("110", "070", "005"))
    by_name = client.get(entries_url(tenant, many), {"q": "user 07"}).content.decode()
    assert rows(by_name) == 10 and "User 070" in by_name and "User 079" in by_name

    # 117 entries say "Feedback": the pages of a search keep to it.
    searched = client.get(entries_url(tenant, many), {"q": "FEEDBACK"}).content.decode()
    assert "117 entries match “FEEDBACK”" in searched and "Page 1 of 3" in searched
    assert 'href="?page=2&amp;q=FEEDBACK"' in searched
    last = client.get(entries_url(tenant, many), {"q": "FEEDBACK", "page": 3}).content.decode()
    assert rows(last) == 17 and "User 005" not in last and 'href="?page=2&amp;q=FEEDBACK"' in last


def test_a_search_that_finds_nothing_says_so(client, owner, tenant, many):
    client.force_login(owner)
    page = client.get(entries_url(tenant, many), {"q": "<b>nothing</b>"}).content.decode()

    assert "No entries match “&lt;b&gt;nothing&lt;/b&gt;”" in page and rows(page) == 0
    assert f'href="{entries_url(tenant, many)}">Show all entries</a>' in page


def test_with_no_entries_yet_it_shows_how_to_send_them(client, owner, tenant):
    source, _ = rest_source(tenant, owner, "src-1")
    client.force_login(owner)
    page = client.get(entries_url(tenant, source)).content.decode()

    assert "No entries yet." in page and 'name="q"' not in page
    assert 'curl -X POST "http://testserver/api/v1/source/import"' in page
    assert '"source_id": "src-1"' in page and "X-API-KEY: your_api_key" in page
    assert reverse("integration_credentials", args=[tenant.slug, source.pk]) in page


def test_what_was_sent_is_shown_as_text(client, owner, tenant, send):
    source, key = rest_source(tenant, owner, "src-1")
    send(key, "src-1", [entry("2024-03-08 00:00:00", "<script>alert(1)</script>", "x" * 400)])
    client.force_login(owner)
    page = client.get(entries_url(tenant, source)).content.decode()

    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<details><summary>" + "x" * 299 + "…</summary>" + "x" * 400 + "</details>" in page


def test_outsiders_and_other_integrations_get_404(client, outsider, owner, tenant, other_tenant, many):
    client.force_login(outsider)
    assert client.get(entries_url(tenant, many)).status_code == 404
    theirs, _ = rest_source(other_tenant, outsider, "src-1")
    assert client.get(entries_url(other_tenant, theirs)).status_code == 200

    client.force_login(owner)  # another tenant's source under our name, or a source that sends: no such page
    assert client.get(reverse("source_import_entries", args=[tenant.slug, theirs.pk])).status_code == 404
    sender = services.create_integration(tenant, owner, name="To vendor", protocol="source_import",
                                         direction="outbound", source_id="theirs", endpoint_url="https://vendor.test/",
                                         credentials={"api_key": "k"})
    assert client.get(reverse("source_import_entries", args=[tenant.slug, sender.pk])).status_code == 404
    assert "Entries</a>" not in client.get(
        reverse("integration_credentials", args=[tenant.slug, sender.pk])).content.decode()
    assert client.get(reverse("integration_credentials", args=[tenant.slug, many.pk])).status_code == 200


def test_the_credentials_tab_links_to_the_entries_instead_of_listing_them(client, owner, tenant, many):
    client.force_login(owner)
    page = client.get(reverse("integration_credentials", args=[tenant.slug, many.pk])).content.decode()

    assert rows(page) == 0 and "User 119" not in page and "<table" not in page
    assert f'href="{entries_url(tenant, many)}">See what this source received on the Entries tab</a>' in page
    assert f'href="{entries_url(tenant, many)}" >Entries</a>' in page
