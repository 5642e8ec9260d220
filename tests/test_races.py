"""Writes that race: a PATCH and a DELETE of the same integration at the same moment, through
gunicorn as deployed (threads), forty times. Each round ends in one of the two orders, never in
a server error, and never with a deleted integration back (a save that fell back to INSERT).
And two integrations' processing creating the same new accounts at once."""

import re
import threading
import time
from pathlib import Path

import pytest
import requests
from django.db import connection, transaction
from django.urls import reverse

from integrations import services
from integrations.models import ApiToken, Integration
from live_stack import gunicorn
from integrations import views
from integrations.protocols.data_integration import values
from integrations.protocols.data_integration.protocol import DataFormat
from portal.models import AuditEvent
from uploads.intake import receive
from uploads.models import Account

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 40


def race(url, token):
    """PATCH and DELETE sent together (both threads released at once); their statuses."""
    headers = {"Authorization": f"Token {token}"}
    start, answers = threading.Barrier(2), {}

    def patch():
        start.wait()
        answers["patch"] = requests.patch(url, json={"name": "Renamed"}, headers=headers, timeout=30).status_code

    def delete():
        start.wait()
        answers["delete"] = requests.delete(url, headers=headers, timeout=30).status_code

    threads = [threading.Thread(target=patch), threading.Thread(target=delete)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_patch_and_delete_of_one_integration_at_once(tenant, owner, tmp_path, settings):
    _, token = services.issue_api_token(tenant, owner, "races", ApiToken.Scope.READ_WRITE)
    outcomes = []
    with gunicorn(tmp_path, settings.MEDIA_ROOT, env={"WEB_THREADS": "8"}) as server:
        for round_ in range(ROUNDS):
            integration = services.create_integration(
                tenant, owner, name=f"Racing {round_}", data_type=f"race-{round_}", data_format="json",
                field_keys=["email", "date", "calls"],
                metrics=[{"name": "calls", "source_key": "calls", "aggregation": "sum"}])
            answers = race(f"{server.url}/api/v3/integrations/{integration.pk}/", token)
            survived = Integration.objects.filter(pk=integration.pk).exists()
            outcomes.append((answers["patch"], answers["delete"], survived))
            # Either the DELETE came second and won (204, gone; the PATCH landed or found nothing) …
            # … or it came first (204, gone) and the PATCH found nothing (404). Never back from the dead.
            assert answers["delete"] == 204, (round_, answers, server.log[-3000:])
            assert answers["patch"] in (200, 404), (round_, answers, server.log[-3000:])
            assert not survived, (round_, answers)
            deleted = [event.detail.get("key") for event in AuditEvent.objects.filter(
                tenant=tenant, action=AuditEvent.Action.INTEGRATION_DELETED)]
            assert deleted.count(f"race-{round_}") == 1, (round_, answers)  # audited once, whichever came first
        log = server.log
    assert not re.search(r'" 5\d\d ', log) and "Internal Server Error" not in log  # no status 5xx in the access log
    print(f"\nraces: {ROUNDS} rounds, (PATCH, DELETE) answers: "
          f"{sorted({(p, d) for p, d, _ in outcomes})}")


@pytest.mark.django_db(transaction=False)
def test_deleting_an_integration_takes_its_stored_files(tenant, owner, settings, calls_integration,
                                                        django_capture_on_commit_callbacks):
    uploads = [receive(calls_integration, b'[{"email": "a@x.com", "date": "8/16/2016", "calls": 1}]',
                       content_type="application/json", channel="api") for _ in range(2)]
    files = [Path(settings.MEDIA_ROOT) / upload.file.name for upload in uploads]
    assert all(path.exists() for path in files)
    with django_capture_on_commit_callbacks(execute=True):
        services.delete_integration(calls_integration, owner)
    assert [path.exists() for path in files] == [False, False]


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize("page, form", [
    ("integration_settings", {"name": "Renamed", "enabled": "on", "max_attempts": 3}),
    ("integration_delete", {}),
])
def test_a_page_acting_on_an_integration_deleted_meanwhile_answers_404(
        owner_client, tenant, owner, calls_integration, monkeypatch, page, form):
    """The page looked the integration up, then another request deleted it before the change
    took its row lock: the answer is the page for a missing integration, not a server error."""
    stale = Integration.objects.get(pk=calls_integration.pk)
    services.delete_integration(calls_integration, owner)
    monkeypatch.setattr(views, "_integration", lambda request, pk: stale)
    answer = owner_client.post(reverse(page, args=[tenant.slug, stale.pk]), form)
    assert answer.status_code == 404
    assert not Integration.objects.filter(pk=stale.pk).exists()


def test_two_integrations_creating_the_same_new_accounts_at_once_do_not_deadlock(tenant, owner, calls_integration):
    """Two processing transactions of one tenant, each creating the same two new accounts in the
    opposite order (as two batches did under load). Before the tenant's lock for new accounts,
    each waited for the other's uncommitted row and PostgreSQL failed one as a deadlock."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time")
    other = services.create_integration(
        tenant, owner, name="Calls again", data_type="calls-again", data_format="json",
        field_keys=["email", "date", "calls"], metrics=[{"name": "calls", "source_key": "calls", "aggregation": "sum"}])
    formats = [DataFormat.of(calls_integration), DataFormat.of(other)]
    inserted_first, errors = [], []

    def other_is_blocked_or_done_too():
        # Both inserted their first account, or one waits for a lock the other holds.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                           "AND datname = current_database()")
            return len(inserted_first) == 2 or cursor.fetchone()[0] > 0

    def batch(fmt, emails):
        try:
            with transaction.atomic():
                values._account_ids(fmt, emails[:1])
                inserted_first.append(fmt.integration_id)
                deadline = time.monotonic() + 30
                while not other_is_blocked_or_done_too() and time.monotonic() < deadline:
                    time.sleep(0.01)  # polling the other transaction's state, not waiting for it
                values._account_ids(fmt, emails[1:])
        except Exception as exc:  # noqa: BLE001 — collected for the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=batch, args=(formats[0], ["ann@x.com", "bob@x.com"])),
               threading.Thread(target=batch, args=(formats[1], ["bob@x.com", "ann@x.com"]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(Account.objects.filter(tenant=tenant).values_list("email", flat=True)) == ["ann@x.com", "bob@x.com"]
