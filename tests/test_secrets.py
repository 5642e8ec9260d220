"""No secret anywhere it should not be. A full flow on gunicorn and a real worker: an API token
and an AUTH_TOKEN and an API key issued on the pages, vendor credentials stored through the
API, uploads in and out, a vendor that refuses a file and echoes its credential in every field
of its errors, then one that takes it. Afterwards every page and API answer, every text column
of the database (sessions decoded) and the server's and the worker's logs are searched for
each secret: zero hits. (The page that issues a token shows it once; that answer is the only
place it may appear.)"""

import json
import re

import pytest
import requests
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from werkzeug import Response

from tests.conftest import PASSWORD
from integrations import services
from live_stack import gunicorn, start_worker, stop, wait_for
from tenant_data import model_for, tenant_rows, url_patterns
from uploads.models import Upload

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

VENDOR_SECRET = "vendor-Secret-echoed-4be1c27d9a"
CSRF = "s" * 32
ISSUED = re.compile(r"[0-9a-f]{8}\.[A-Za-z0-9_-]{20,}")
RECORDS = json.dumps([{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"}]).encode()


class Browser:
    """A signed-in user's requests to the server: the session of force_login, a CSRF cookie."""

    def __init__(self, url, session_id):
        self.url, self.http = url, requests.Session()
        self.http.cookies.update({"sessionid": session_id, "csrftoken": CSRF})

    def get(self, path):
        return self.http.get(self.url + path, timeout=30)

    def post(self, path, data=None):
        return self.http.post(self.url + path, data={"csrfmiddlewaretoken": CSRF, **(data or {})},
                              headers={"Referer": self.url + path}, timeout=30)


def issued_on(page):
    found = ISSUED.findall(page)
    assert len(set(found)) == 1, found
    return found[0]


def vendor_answers(httpserver):
    """The vendor refuses the first file, echoing the credential it was sent in every field of
    its error (and in a header and its body); it takes the second."""
    calls = []

    def answer(request):
        calls.append(request)
        if len(calls) == 1:
            token = request.headers.get("Authorization", "").removeprefix("Token ")
            body = {"errors": [{"id": f"bad_{token}", "description": f"Token {token} is not allowed",
                                "row": token, "column": {"sent": [token]}}], "echo": token}
            return Response(json.dumps(body), status=400, content_type="application/json",
                            headers={"X-Request-Id": token})
        return Response(json.dumps({"id": 1}), status=201, content_type="application/json")

    httpserver.expect_request("/api/v1/data/calls/", method="POST").respond_with_handler(answer)
    return calls


def text_columns_holding(secret):
    """(table, column) of every text-like column of the database holding the secret."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            for column in connection.introspection.get_table_description(cursor, table):
                cursor.execute(f'SELECT COUNT(*) FROM "{table}" WHERE CAST("{column.name}" AS TEXT) LIKE %s',
                               [f"%{secret}%"])
                if cursor.fetchone()[0]:
                    found.append((table, column.name))
    return found


def test_no_secret_in_any_page_answer_column_or_log(client, tenant, owner, tmp_path, settings, httpserver):
    allowed = {"PORTAL_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.1/32"}
    vendor = vendor_answers(httpserver)
    calls = services.create_integration(
        tenant, owner, name="Calls", data_type="calls", data_format="json", field_keys=["email", "date", "calls"],
        metrics=[{"name": "calls", "source_key": "calls", "aggregation": "sum"}])
    source = services.create_integration(tenant, owner, name="Feedback", protocol="source_import",
                                         source_id="src-1")
    client.force_login(owner)
    answers = []  # every answer after the ones that issue a secret

    with gunicorn(tmp_path, settings.MEDIA_ROOT, env=allowed) as server:
        worker = start_worker(tmp_path, settings.MEDIA_ROOT, server.broker_env, extra_env=allowed)
        try:
            browser = Browser(server.url, client.cookies["sessionid"].value)
            # Secrets issued on the pages, each shown once.
            api_token = issued_on(browser.post("/t/acme/tokens/new/", {"name": "flow", "scope": "read_write"}).text)
            auth_token = issued_on(browser.post(f"/t/acme/integrations/{calls.pk}/credentials/regenerate/").text)
            api_key = issued_on(browser.post(f"/t/acme/integrations/{source.pk}/credentials/regenerate/").text)
            secrets = {"API token": api_token, "AUTH_TOKEN": auth_token, "API key": api_key,
                       "vendor credential": VENDOR_SECRET, "password": PASSWORD}
            api = {"Authorization": f"Token {api_token}"}

            # Vendor credentials stored through the API; out of Sandbox Mode; two files sent.
            created = requests.post(f"{server.url}/api/v3/integrations/", headers=api, timeout=30, json={
                "name": "Vendor", "direction": "outbound", "data_type": "calls", "data_format": "json",
                "field_keys": ["email", "date", "calls"], "endpoint": httpserver.url_for("/api/v1/data/calls/"),
                "credentials": {"auth_token": VENDOR_SECRET}})
            assert created.status_code == 201, created.text
            answers.append(created)
            outbound = created.json()["id"]
            answers.append(requests.patch(f"{server.url}/api/v3/integrations/{outbound}/", json={"sandbox": False},
                                          headers=api, timeout=30))
            sent = []
            for _ in range(2):
                response = requests.post(f"{server.url}/api/v3/integrations/{outbound}/uploads/", headers=api,
                                         files={"file": ("calls.json", RECORDS, "application/json")}, timeout=30)
                assert response.status_code == 201, response.text
                answers.append(response)
                sent.append(response.json()["id"])
                assert wait_for(lambda: Upload.objects.get(pk=sent[-1]).status in ("delivered", "not_delivered"))
            assert [Upload.objects.get(pk=pk).status for pk in sent] == ["not_delivered", "delivered"]
            refused = Upload.objects.get(pk=sent[0])
            assert "[redacted]" in json.dumps(refused.errors)  # the vendor did echo it

            # Inbound: a file in, a bad one refused, an import, a wrong token.
            data_url = f"{server.url}/api/v1/data/calls/"
            inbound = requests.post(data_url, data=RECORDS, timeout=30, headers={
                "Authorization": f"Token {auth_token}", "Content-Type": "application/json"})
            assert inbound.status_code == 201, inbound.text
            assert wait_for(lambda: Upload.objects.get(pk=inbound.json()["id"]).status == "processed")
            for body, token in ((b"[{", auth_token), (RECORDS, auth_token + "x")):
                answers.append(requests.post(data_url, data=body, timeout=30, headers={
                    "Authorization": f"Token {token}", "Content-Type": "application/json"}))
            answers.append(requests.post(f"{server.url}/api/v1/source/import", timeout=30, headers={
                "X-API-KEY": api_key}, json={"source_id": "src-1", "payload": [
                    {"date": "2024-03-08 00:29:00", "name": "User 1", "content": "Feedback 1"}]}))
            assert answers[-1].status_code == 200, answers[-1].text

            # Every page of the tenant, with its objects; every API answer.
            rows = tenant_rows(tenant)
            for name, template, params in url_patterns():
                if template.startswith("api/") and not params:
                    answers.append(requests.get(f"{server.url}/{template}", headers=api, timeout=30))
                takes_objects = all(p == "slug" or p.endswith("pk") for p in params)
                if not template.startswith(("t/", "api/v3/")) or not params or not takes_objects:
                    continue
                values = {"slug": tenant.slug}
                for param in params:
                    if param != "slug":
                        model = model_for(template, param, rows)
                        values[param] = min(rows[model]) if model else 1
                path = "/" + template % values
                answers.append(requests.get(server.url + path, headers=api, timeout=30) if path.startswith("/api/")
                               else browser.get(path))
            answers += [browser.get(f"/t/acme/uploads/{pk}/errors.csv") for pk in sent]
        finally:
            stop(worker)
        logs = {"server": server.log, "worker": worker.log_path.read_text(errors="replace")}

    assert len(vendor) == 2 and len(answers) > 40
    for what, secret in secrets.items():
        assert [a.url for a in answers if secret in a.text] == [], what
        assert {name for name, log in logs.items() if secret in log} == set(), what
        assert text_columns_holding(secret) == [], what
        with connection.cursor() as cursor:
            cursor.execute("SELECT session_data FROM django_session")
            sessions = [data for (data,) in cursor.fetchall() if secret in json.dumps(SessionStore().decode(data))]
        assert sessions == [], what


def test_a_redirect_to_a_name_that_resolves_to_a_refused_address_is_refused_end_to_end(
        tenant, owner, tmp_path, settings):
    """The vendor (on 127.0.0.2, the one allowed network) answers 307 to http://localhost:…, a name
    whose addresses (127.0.0.1, ::1) are not allowed: the worker refuses the hop when it connects,
    the target sees nothing, the credential goes nowhere else, and the upload says why."""
    from pytest_httpserver import HTTPServer

    target = HTTPServer(host="127.0.0.1", port=0)
    target.expect_request("/steal", method="POST").respond_with_data("", status=201)
    vendor = HTTPServer(host="127.0.0.2", port=0)
    target.start()
    vendor.start()
    try:
        vendor.expect_request("/api/v1/data/calls/", method="POST").respond_with_data(
            "", status=307, headers={"Location": f"http://localhost:{target.port}/steal"})
        allowed = {"PORTAL_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.2/32"}
        settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.2/32"]
        integration = services.create_integration(
            tenant, owner, name="Vendor", direction="outbound", data_type="calls", data_format="json",
            field_keys=["email", "date", "calls"], endpoint_url=vendor.url_for("/api/v1/data/calls/"),
            credentials={"auth_token": VENDOR_SECRET})
        services.set_sandbox(integration, owner, False)
        _, token = services.issue_api_token(tenant, owner, "redirect", "read_write")
        with gunicorn(tmp_path, settings.MEDIA_ROOT, env=allowed) as server:
            worker = start_worker(tmp_path, settings.MEDIA_ROOT, server.broker_env, extra_env=allowed)
            try:
                response = requests.post(f"{server.url}/api/v3/integrations/{integration.pk}/uploads/",
                                         headers={"Authorization": f"Token {token}"}, timeout=30,
                                         files={"file": ("calls.json", RECORDS, "application/json")})
                assert response.status_code == 201, response.text
                upload_id = response.json()["id"]
                assert wait_for(lambda: Upload.objects.get(pk=upload_id).status == "not_delivered")
            finally:
                stop(worker)
            log = worker.log_path.read_text(errors="replace")
        upload = Upload.objects.get(pk=upload_id)
        hop, refused = upload.call_logs.order_by("created_at", "id")
        assert hop.status_code == 307 and refused.error_class == "RefusedDestination"
        assert refused.status_code is None and "localhost resolves to a private or local address" in refused.error_message
        assert upload.errors[0]["id"] == "outbound_refused" and upload.dispatches.get().attempts == 1  # not retried
        assert len(vendor.log) == 1 and target.log == []  # nothing reached the other host
        assert "Outbound call refused" in log and VENDOR_SECRET not in log
    finally:
        vendor.clear()
        vendor.stop()
        target.stop()


@pytest.mark.django_db
def test_the_demo_prints_no_token_unless_asked(capsys):
    """`make run` calls `manage.py demo`, whose output lands in the run's log: no live token in it."""
    from django.core.management import call_command

    call_command("demo")
    printed = capsys.readouterr().out
    call_command("demo", "--json")
    issued = json.loads(capsys.readouterr().out)
    tokens = {value for value in json.dumps(issued).split('"') if ISSUED.fullmatch(value)}
    assert tokens  # --json does print them: fresh ones, the earlier ones revoked
    assert ISSUED.search(printed) is None, printed
