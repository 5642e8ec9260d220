"""Reference 001's pages: accounts, groups, the import of a CSV file through the upload
pipeline, the scorecard with its scores (table and inline SVG chart), the Accounts and groups
tab; roles and tenant isolation."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from integrations import services
from integrations.protocols.public_api.models import Scorecard, ScorecardEntry
from uploads.intake import receive
from uploads.models import Account, Group, Upload

pytestmark = pytest.mark.django_db


def url(name, tenant, *args):
    return reverse(name, args=[tenant.slug, *args])


@pytest.fixture
def people(tenant):
    maria = Account.objects.create(tenant=tenant, email="maria@yourcompany.com")
    jason = Account.objects.create(tenant=tenant, email="jason@yourcompany.com", manager=maria)
    return maria, jason


def test_accounts_are_listed_searched_created_and_edited(editor_client, tenant, people):
    maria, jason = people
    assert maria.username == "maria"  # made from the email
    page = editor_client.get(url("public_api_accounts", tenant)).content.decode()
    assert "maria@yourcompany.com" in page and "jason@yourcompany.com" in page
    page = editor_client.get(url("public_api_accounts", tenant), {"q": "JAS"}).content.decode()
    assert "jason@yourcompany.com" in page and "maria@yourcompany.com" not in page

    response = editor_client.post(url("public_api_account_create", tenant), {
        "email": "Lee@YourCompany.com", "username": "", "manager": maria.pk})
    assert response.status_code == 302
    lee = Account.objects.get(email="lee@yourcompany.com")
    assert (lee.username, lee.manager) == ("lee", maria)

    # A username taken, and a manager chain that goes round, are refused.
    response = editor_client.post(url("public_api_account_edit", tenant, lee.pk), {
        "email": "lee@yourcompany.com", "username": "JASON"})
    assert response.status_code == 200 and "Another account of this tenant has this username." in response.content.decode()
    response = editor_client.post(url("public_api_account_edit", tenant, maria.pk), {
        "email": "maria@yourcompany.com", "username": "maria", "manager": jason.pk})
    assert response.status_code == 200 and "is above them" in response.content.decode()
    assert Account.objects.get(pk=maria.pk).manager is None


def test_groups_with_members_and_managers(editor_client, tenant, people):
    maria, jason = people
    response = editor_client.post(url("public_api_group_create", tenant), {
        "name": "East", "members": [jason.pk], "managers": [maria.pk]})
    assert response.status_code == 302
    east = Group.objects.get(tenant=tenant, name="East")
    assert list(east.accounts.all()) == [jason] and list(east.managers.all()) == [maria]
    page = editor_client.get(url("public_api_groups", tenant)).content.decode()
    assert "East" in page and f"<code>{east.pk}</code>" in page
    response = editor_client.post(url("public_api_group_create", tenant), {"name": "East"})
    assert "Another group of this tenant has this name." in response.content.decode()
    editor_client.post(url("public_api_group_delete", tenant, east.pk))
    assert not Group.objects.exists() and Account.objects.count() == 2


def test_import_goes_through_the_upload_pipeline(editor_client, tenant, people, django_capture_on_commit_callbacks):
    csv = (b"email,username,manager,groups,manages\n"
           b"maria@yourcompany.com,,,,East\n"
           b"jason@yourcompany.com,jay,maria,East;Inbound,\n"
           b"new@yourcompany.com,,jay,East,\n")
    with django_capture_on_commit_callbacks(execute=True):
        response = editor_client.post(url("public_api_import", tenant),
                                      {"file": SimpleUploadedFile("people.csv", csv, "text/csv")})
    upload = Upload.objects.get()
    assert response.status_code == 302 and response["Location"] == upload.get_absolute_url()
    upload.refresh_from_db()
    assert upload.status == "processed" and upload.records == 3 and "1 new" in upload.message
    assert upload.integration.protocol == "public_api" and upload.integration.is_inbound  # made on first import
    new = Account.objects.get(email="new@yourcompany.com")
    assert (new.username, new.manager.username) == ("new", "jay")
    assert sorted(Group.objects.values_list("name", flat=True)) == ["East", "Inbound"]
    assert list(Group.objects.get(name="East").managers.values_list("username", flat=True)) == ["maria"]

    # A file with problems is refused whole and says where.
    response = editor_client.post(url("public_api_import", tenant),
                                  {"file": SimpleUploadedFile("bad.csv", b"email,manager\nx,\nlee@x.com,nobody\n")})
    page = response.content.decode()
    assert response.status_code == 400 and "Nothing was imported" in page and "Row 1, email" in page
    assert Upload.objects.count() == 1 and not Account.objects.filter(email="lee@x.com").exists()


def test_scorecard_page_shows_entries_scores_and_a_chart(owner_client, tenant, owner, people, activity_integration,
                                                         django_capture_on_commit_callbacks):
    services.set_sandbox(activity_integration, owner, False)
    calls = activity_integration.metrics.get(name="calls")
    response = owner_client.post(url("public_api_scorecard", tenant), {
        "metric": calls.pk, "kind": "activity", "weight": "2", "goal_day": "10", "goal_week": "50",
        "goal_month": "200"})
    assert response.status_code == 302
    assert ScorecardEntry.objects.get().scorecard == Scorecard.objects.get(tenant=tenant)
    with django_capture_on_commit_callbacks(execute=True):
        receive(activity_integration, b"email,date,calls,talk_minutes,deals\njason@yourcompany.com,11/2/2026,15,0,0\n",
                content_type="text/csv", channel="api")
    page = owner_client.get(url("public_api_scorecard", tenant), {"period": "day", "date": "2026-11-02"}).content \
        .decode()
    assert re.search(r"<code>jason</code>.*?150\.0", page, re.S)  # capped
    assert re.search(r'id="team-scores".*?<code>maria</code>.*?150\.0', page, re.S)  # her one report
    svg = re.search(r"<svg.*?</svg>", page, re.S).group(0)
    points = re.search(r'data-series="Activity" points="([^"]+)"', svg).group(1).split()
    assert len(points) == 30 and "<script" not in page.split("<main>")[1].split("</main>")[0]
    assert "cdn" not in svg.lower()


def test_viewers_look_and_outsiders_get_404(viewer_client, tenant, people, outsider):
    maria, _ = people
    outsider_client = Client()
    outsider_client.force_login(outsider)
    assert viewer_client.get(url("public_api_accounts", tenant)).status_code == 200
    assert viewer_client.get(url("public_api_scorecard", tenant)).status_code == 200
    assert viewer_client.get(url("public_api_account_edit", tenant, maria.pk)).status_code == 403
    assert viewer_client.post(url("public_api_account_create", tenant), {"email": "x@y.z"}).status_code == 403
    assert viewer_client.get(url("public_api_import", tenant)).status_code == 403
    for name, args in [("public_api_accounts", []), ("public_api_groups", []), ("public_api_scorecard", []),
                       ("public_api_account_edit", [maria.pk])]:
        assert outsider_client.get(url(name, tenant, *args)).status_code == 404


def test_another_tenants_account_answers_404_in_this_tenant(client, outsider, other_tenant, tenant, owner, people):
    client.force_login(outsider)
    maria, _ = people
    assert client.get(url("public_api_account_edit", other_tenant, maria.pk)).status_code == 404


def test_the_import_integration_has_an_accounts_and_groups_tab(owner_client, tenant, owner, people):
    integration = services.create_integration(tenant, owner, name="People", protocol="public_api",
                                              direction="inbound")
    page = owner_client.get(integration.get_absolute_url()).content.decode()
    tab = url("public_api_directory", tenant, integration.pk)
    assert tab in page
    page = owner_client.get(tab).content.decode()
    assert "<strong>2</strong> accounts" in page and "/api/v3/account" in page and "Import from CSV" in page
    credentials = owner_client.get(url("integration_credentials", tenant, integration.pk)).content.decode()
    assert "Standard API tokens" in credentials and "/api/v3/activity-score" in credentials


def test_admin_edits_accounts_and_groups_within_their_tenant(admin_client, tenant, other_tenant, people):
    maria, jason = people
    stranger = Account.objects.create(tenant=other_tenant, email="stranger@globex.com")
    assert admin_client.get("/admin/uploads/group/").status_code == 200
    assert admin_client.get(f"/admin/uploads/account/{jason.pk}/change/").status_code == 200
    response = admin_client.post("/admin/uploads/group/add/", {"tenant": tenant.pk, "name": "East",
                                                               "managers": [maria.pk, stranger.pk]})
    assert response.status_code == 200 and "Not accounts of Acme: stranger@globex.com" in response.content.decode()
    response = admin_client.post("/admin/uploads/group/add/", {"tenant": tenant.pk, "name": "East",
                                                               "managers": [maria.pk]})
    assert response.status_code == 302 and list(Group.objects.get().managers.all()) == [maria]
    # An account left without a username gets one made from its email; a manager loop is refused.
    response = admin_client.post(f"/admin/uploads/account/{maria.pk}/change/", {
        "tenant": tenant.pk, "email": "maria@yourcompany.com", "username": "", "manager": jason.pk})
    assert response.status_code == 200 and "is above them" in response.content.decode()
    response = admin_client.post("/admin/uploads/account/add/", {"tenant": tenant.pk, "email": "New@YourCompany.com",
                                                                 "username": ""})
    assert response.status_code == 302
    assert Account.objects.get(email="new@yourcompany.com").username == "new"


def test_an_outbound_integration_is_created_on_the_page_with_its_pull_settings(owner_client, tenant):
    response = owner_client.post(reverse("integration_create", args=[tenant.slug]), {
        "name": "Vendor scores", "direction": "outbound", "protocol": "public_api",
        "endpoint_url": "https://vendor.example.com", "vault-public_api-api_token": "vendor-token-1234",
        "public_api-period": "week", "public_api-schedule": "6", "public_api-page_size": "500"})
    assert response.status_code == 302, response.content.decode()[:2000]
    integration = tenant.integrations.get(protocol="public_api")
    assert integration.settings == {"period": "week", "schedule": "6", "page_size": 500}
    assert integration.read_vendor_credentials() == {"api_token": "vendor-token-1234"}
    page = owner_client.get(reverse("public_api_pulled", args=[tenant.slug, integration.pk])).content.decode()
    assert "Pull now" in page and "vendor-token-1234" not in page


def test_people_and_scores_are_in_the_main_navigation(viewer_client, tenant, people):
    """Accounts, groups and the scorecard belong to the tenant, not to one integration: every page
    links to them, and marks the link current on each of them."""
    accounts = reverse("public_api_accounts", args=[tenant.slug])
    link = re.compile(r'<a href="([^"]+)" (aria-current="page")?\s*>People and scores</a>')
    found = link.search(viewer_client.get(reverse("dashboard", args=[tenant.slug])).content.decode())
    assert found and found.group(1) == accounts and not found.group(2)
    for name in ("public_api_accounts", "public_api_groups", "public_api_scorecard"):
        found = link.search(viewer_client.get(reverse(name, args=[tenant.slug])).content.decode())
        assert found and found.group(2), name
