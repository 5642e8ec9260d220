"""The automation API (/api/v3/integrations/) with real Standard API tokens, through the test client."""

import json

import pytest

from integrations import services
from integrations.models import ApiToken, Integration
from portal.models import AuditEvent
from uploads.models import Account, MetricValue, Upload

VENDOR_SECRET = "vendor-secret-7f3a9c1e-do-not-leak"


def auth(token):
    return {"Authorization": f"Token {token}"}


@pytest.fixture
def outsider_token(other_tenant, outsider):
    _, token = services.issue_api_token(other_tenant, outsider, "outsider", ApiToken.Scope.READ_WRITE)
    return token


@pytest.fixture
def api(client, api_token):
    """Calls /api/v3/ with the read-write token and keeps every response body seen."""

    class Api:
        bodies = []

        def call(self, method, path, data=None, token=api_token, **kwargs):
            if data is not None and "content_type" not in kwargs:
                kwargs["content_type"] = "application/json"
                data = json.dumps(data)
            args = (path,) if data is None else (path, data)
            response = getattr(client, method)(*args, headers=auth(token), **kwargs)
            self.bodies.append(response.content.decode())
            return response

        def get(self, path, **kw):
            return self.call("get", path, **kw)

        def post(self, path, data=None, **kw):
            return self.call("post", path, data, **kw)

        def patch(self, path, data=None, **kw):
            return self.call("patch", path, data, **kw)

        def delete(self, path, **kw):
            return self.call("delete", path, **kw)

        def upload(self, path, file, token=api_token):
            """A multipart POST with the file in its `file` part."""
            response = client.post(path, {"file": file} if file is not None else {"note": "no file"},
                                   headers=auth(token))
            self.bodies.append(response.content.decode())
            return response

    return Api()


NEW_INBOUND = {
    "name": "Steps", "direction": "inbound", "protocol": "data_integration", "data_type": "steps",
    "data_format": "csv", "field_keys": ["email", "date", "steps"], "user_key": "email", "date_key": "date",
    "date_format": "YYYY-MM-DD", "metrics": [{"name": "steps", "source_key": "steps", "aggregation": "sum"}],
}

NEW_OUTBOUND = {
    "name": "To vendor", "direction": "outbound", "data_type": "calls", "data_format": "json",
    "field_keys": ["email", "date", "calls"], "endpoint": "https://vendor.example.com/api/v1/data/calls/",
    "credentials": {"auth_token": VENDOR_SECRET},
}


def test_without_a_token_the_api_answers_401(client, calls_integration):
    response = client.get("/api/v3/integrations/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert client.get("/api/v3/integrations/", headers=auth("deadbeef.not-a-real-token")).status_code == 401


def test_other_kinds_of_token_are_not_api_tokens(client, tenant, owner, calls_integration):
    auth_token = services.regenerate_integration_token(calls_integration, owner)
    _, file_upload_token = services.issue_api_token(tenant, owner, "files", ApiToken.Scope.READ_WRITE,
                                                    ApiToken.Kind.FILE_UPLOAD)
    for token in (auth_token, file_upload_token):
        assert client.get("/api/v3/integrations/", headers=auth(token)).status_code == 401


def test_a_revoked_token_is_refused(client, tenant, owner, calls_integration):
    row, token = services.issue_api_token(tenant, owner, "old", ApiToken.Scope.READ_WRITE)
    assert client.get("/api/v3/integrations/", headers=auth(token)).status_code == 200
    services.revoke_api_token(row, owner)
    assert client.get("/api/v3/integrations/", headers=auth(token)).status_code == 401


def test_list_shows_the_tenants_integrations_with_their_absolute_endpoint(api, calls_integration, activity_integration):
    response = api.get("/api/v3/integrations/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    by_type = {i["data_type"]: i for i in body["results"]}
    calls = by_type["calls"]
    assert calls["id"] == calls_integration.pk
    assert calls["direction"] == "inbound"
    assert calls["protocol"] == "data_integration"
    assert calls["data_format"] == "json"
    assert calls["field_keys"] == ["email", "date", "calls"]
    assert calls["sandbox"] is True
    assert calls["endpoint"] == "http://testserver/api/v1/data/calls/"
    assert calls["metrics"] == [{"name": "calls", "source_key": "calls", "aggregation": "sum"}]
    assert "credentials" not in calls


def test_create_an_inbound_integration_in_sandbox_with_metrics_and_an_audit_event(api, tenant):
    response = api.post("/api/v3/integrations/", NEW_INBOUND)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["sandbox"] is True
    assert body["endpoint"] == "http://testserver/api/v1/data/steps/"

    integration = Integration.objects.get(pk=body["id"], tenant=tenant)
    assert integration.sandbox and integration.settings["data_format"] == "csv"
    assert integration.settings["date_format"] == "YYYY-MM-DD"
    assert [(m.name, m.source_key, m.aggregation) for m in integration.metrics.all()] == [("steps", "steps", "sum")]
    event = AuditEvent.objects.get(tenant=tenant, action=AuditEvent.Action.INTEGRATION_CREATED)
    assert event.actor_label == "API token 'tests'"
    assert event.actor is None
    assert event.integration == integration

    # And it is there to read back.
    assert api.get(f"/api/v3/integrations/{integration.pk}/").json()["name"] == "Steps"


def test_outbound_credentials_are_stored_encrypted_and_never_returned(api, tenant, client):
    response = api.post("/api/v3/integrations/", NEW_OUTBOUND)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["direction"] == "outbound"
    assert body["endpoint"] == NEW_OUTBOUND["endpoint"]
    assert body["credentials_set"] is True
    assert "credentials" not in body
    pk = body["id"]

    # Replace them; still never shown back.
    new_secret = VENDOR_SECRET + "-rotated"
    assert api.patch(f"/api/v3/integrations/{pk}/", {"credentials": {"auth_token": new_secret}}).status_code == 200
    api.get(f"/api/v3/integrations/{pk}/")
    api.get("/api/v3/integrations/")
    api.get("/api/v3/schema/")

    integration = Integration.objects.get(pk=pk)
    assert integration.read_vendor_credentials() == {"auth_token": new_secret}
    assert VENDOR_SECRET not in integration.vendor_credentials  # ciphertext, not the secret
    for body in api.bodies:
        assert VENDOR_SECRET not in body
    for event in AuditEvent.objects.filter(tenant=tenant):
        assert VENDOR_SECRET not in json.dumps(event.detail) + event.target + event.actor_label
    actions = set(AuditEvent.objects.filter(tenant=tenant).values_list("action", flat=True))
    assert AuditEvent.Action.VENDOR_SECRET_REPLACED in actions


@pytest.mark.parametrize("change, field", [
    ({"name": ""}, "name"),
    ({"data_type": "Not A Slug!"}, "data_type"),
    ({"data_type": "calls"}, "data_type"),  # the tenant has an inbound `calls` already
    ({"data_format": "xml"}, "data_format"),
    ({"user_key": "login"}, "user_key"),
    ({"sandbox": False}, "sandbox"),
    ({"direction": "outbound"}, "endpoint"),
    ({"endpoint": "https://example.com/"}, "endpoint"),
    ({"credentials": {"auth_token": "x"}}, "credentials"),
    ({"metrics": [{"name": "m", "source_key": "nope", "aggregation": "sum"}]}, "metrics"),
    ({"metrics": [{"name": "m", "source_key": "steps", "aggregation": "median"}]}, "metrics"),
    ({"protocol": "carrier_pigeon"}, "protocol"),
    ({**NEW_OUTBOUND, "credentials": None}, "credentials"),
    ({**NEW_OUTBOUND, "credentials": {"password": "x"}}, "credentials"),
    ({**NEW_OUTBOUND, "endpoint": "ftp://vendor.example.com/"}, "endpoint"),
])
def test_invalid_input_is_400_with_a_message_for_the_field(api, calls_integration, change, field):
    before = Integration.objects.count()
    response = api.post("/api/v3/integrations/", {**NEW_INBOUND, **change})
    assert response.status_code == 400
    errors = response.json()
    assert field in errors, errors
    assert Integration.objects.count() == before


def test_duplicate_data_type_names_the_problem(api, calls_integration):
    response = api.post("/api/v3/integrations/", {**NEW_INBOUND, "data_type": "calls"})
    assert response.json() == {"data_type": ["This tenant already has an integration with this data type."]}


def test_patch_changes_fields_leaves_sandbox_and_is_audited(api, tenant, calls_integration):
    url = f"/api/v3/integrations/{calls_integration.pk}/"
    response = api.patch(url, {"name": "Phone calls", "field_keys": ["email", "date", "calls", "minutes"],
                               "sandbox": False})
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Phone calls"
    assert response.json()["sandbox"] is False

    calls_integration.refresh_from_db()
    assert calls_integration.name == "Phone calls" and not calls_integration.sandbox
    changed = AuditEvent.objects.get(tenant=tenant, action=AuditEvent.Action.INTEGRATION_CHANGED)
    assert changed.detail["fields"] == ["field_keys", "name"]
    assert changed.actor_label == "API token 'tests'"
    assert AuditEvent.objects.filter(tenant=tenant, action=AuditEvent.Action.SANDBOX_OFF).count() == 1


def test_patch_cannot_change_direction_or_metrics(api, calls_integration):
    url = f"/api/v3/integrations/{calls_integration.pk}/"
    assert "direction" in api.patch(url, {"direction": "outbound"}).json()
    assert "metrics" in api.patch(url, {"metrics": []}).json()
    assert api.patch(url, {"user_key": "nobody"}).status_code == 400
    calls_integration.refresh_from_db()
    assert calls_integration.direction == "inbound" and calls_integration.settings["user_key"] == "email"


def test_what_a_get_gave_can_be_patched_back(api, calls_integration):
    url = f"/api/v3/integrations/{calls_integration.pk}/"
    got = api.get(url).json()
    response = api.patch(url, {**got, "name": "Calls again"})
    assert response.status_code == 200, response.content
    assert response.json() == {**got, "name": "Calls again", "updated_at": response.json()["updated_at"]}


def test_put_is_not_offered(api, calls_integration):
    assert api.call("put", f"/api/v3/integrations/{calls_integration.pk}/", NEW_INBOUND).status_code == 405


def test_delete_removes_the_integration_and_is_audited(api, tenant, calls_integration):
    response = api.delete(f"/api/v3/integrations/{calls_integration.pk}/")
    assert response.status_code == 204
    assert not Integration.objects.filter(pk=calls_integration.pk).exists()
    event = AuditEvent.objects.get(tenant=tenant, action=AuditEvent.Action.INTEGRATION_DELETED)
    assert event.target == "Calls" and event.actor_label == "API token 'tests'"


def _values(integration, n=3):
    account = Account.objects.create(tenant=integration.tenant, email="jason@yourcompany.com")
    upload = Upload.objects.create(tenant=integration.tenant, integration=integration, channel="api",
                                   status="processed", records=n, values_written=n, sandbox=integration.sandbox)
    metric = integration.metrics.get()
    for day in range(1, n + 1):
        MetricValue.objects.create(tenant=integration.tenant, integration=integration, metric=metric,
                                   account=account, date=f"2016-08-{day:02d}", value=day, upload=upload)
    return upload


def test_purge_in_sandbox_deletes_values_and_is_audited(api, tenant, calls_integration):
    upload = _values(calls_integration)
    response = api.post(f"/api/v3/integrations/{calls_integration.pk}/purge/")
    assert response.status_code == 200
    assert response.json() == {"values": 3, "uploads": 1, "files": 0}
    assert not MetricValue.objects.filter(integration=calls_integration).exists()
    upload.refresh_from_db()
    assert upload.status == Upload.Status.PURGED
    event = AuditEvent.objects.get(tenant=tenant, action=AuditEvent.Action.PURGED)
    assert event.actor_label == "API token 'tests'"


def test_purge_out_of_sandbox_is_refused_and_keeps_the_values(api, owner, calls_integration):
    _values(calls_integration)
    services.set_sandbox(calls_integration, owner, False)
    response = api.post(f"/api/v3/integrations/{calls_integration.pk}/purge/")
    assert response.status_code == 409
    assert response.json() == {"detail": "Purge All Data is only available in Sandbox Mode."}
    assert MetricValue.objects.filter(integration=calls_integration).count() == 3


def test_a_read_only_token_may_read_but_not_change(api, tenant, read_only_api_token, calls_integration):
    url = f"/api/v3/integrations/{calls_integration.pk}/"
    assert api.get(url, token=read_only_api_token).status_code == 200
    attempts = [
        api.post("/api/v3/integrations/", NEW_INBOUND, token=read_only_api_token),
        api.patch(url, {"name": "Renamed"}, token=read_only_api_token),
        api.delete(url, token=read_only_api_token),
        api.post(url + "purge/", token=read_only_api_token),
        api.upload(url + "uploads/", _file(), token=read_only_api_token),
    ]
    for response in attempts:
        assert response.status_code == 403
        assert response.json() == {"detail": "This API token is read-only; use a read-write token to change anything."}
    calls_integration.refresh_from_db()
    assert calls_integration.name == "Calls"
    assert Integration.objects.filter(tenant=tenant).count() == 1
    assert not Upload.objects.exists()
    assert not AuditEvent.objects.filter(tenant=tenant, actor_label="API token 'tests-ro'").exists()


def _file():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("calls.json", b'[{"email": "a@b.c", "date": "8/16/2016", "calls": "3"}]',
                              content_type="application/json")


def test_another_tenants_ids_are_404_and_untouched(api, outsider_token, calls_integration):
    url = f"/api/v3/integrations/{calls_integration.pk}/"
    assert api.get("/api/v3/integrations/", token=outsider_token).json()["count"] == 0
    assert api.get(url, token=outsider_token).status_code == 404
    assert api.patch(url, {"name": "Mine now"}, token=outsider_token).status_code == 404
    assert api.delete(url, token=outsider_token).status_code == 404
    assert api.post(url + "purge/", token=outsider_token).status_code == 404
    calls_integration.refresh_from_db()
    assert calls_integration.name == "Calls"


def test_same_data_type_in_another_tenant_is_fine(api, outsider_token, calls_integration):
    response = api.post("/api/v3/integrations/", {**NEW_INBOUND, "data_type": "calls"}, token=outsider_token)
    assert response.status_code == 201
    assert Integration.objects.filter(key="calls").count() == 2


# --- Sending a file: POST /api/v3/integrations/{id}/uploads/ ---------------------------

SEED_EXAMPLE = b'[{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"}]'


def _named(name, content, content_type):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type=content_type)


def test_an_inbound_file_goes_through_the_intake_and_is_processed(
        api, tenant, calls_integration, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.upload(f"/api/v3/integrations/{calls_integration.pk}/uploads/",
                              _named("calls.json", SEED_EXAMPLE, "application/json"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["data_type"] == "calls" and body["direction"] == "inbound"
    assert body["channel"] == "api"
    assert body["records"] == 1
    assert body["sandbox"] is True
    assert body["submitted_via"] == "API token 'tests'"
    assert body["calls"] == []

    upload = Upload.objects.get(pk=body["id"], tenant=tenant)
    assert upload.status == Upload.Status.PROCESSED
    assert upload.filename == "calls.json"
    assert api.get(f"/api/v3/uploads/{upload.pk}/").json()["values_written"] == 1
    value = MetricValue.objects.get(integration=calls_integration)
    assert (value.account.email, str(value.date), value.value) == ("jason@yourcompany.com", "2016-08-16", 3.0)


def test_a_part_without_a_content_type_is_read_by_its_extension(
        api, activity_integration, django_capture_on_commit_callbacks):
    csv = b"email,date,calls,talk_minutes,deals\nann@example.com,8/16/2016,3,12.5,1\nbob@example.com,8/16/2016,1,2,0\n"
    with django_capture_on_commit_callbacks(execute=True):
        response = api.upload(f"/api/v3/integrations/{activity_integration.pk}/uploads/",
                              _named("activity.csv", csv, "application/octet-stream"))
    assert response.status_code == 201, response.content
    assert response.json()["records"] == 2
    assert MetricValue.objects.filter(integration=activity_integration).count() == 6


@pytest.mark.parametrize("name, content, content_type, error_id", [
    ("calls.json", b'[{"email": "jason@yourcompany.com", "date": ', "application/json", "import_parse_json"),
    ("calls.csv", b"email,date,calls\njason@yourcompany.com,8/16/2016,3\n", "text/csv", "import_transform_data"),
    ("calls.json", b'[{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "three"}]',
     "application/json", "import_transform_data"),
])
def test_a_bad_file_is_400_with_the_seeds_error_ids_and_stores_nothing(
        api, settings, calls_integration, name, content, content_type, error_id):
    response = api.upload(f"/api/v3/integrations/{calls_integration.pk}/uploads/", _named(name, content, content_type))
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors[0]["id"] == error_id
    assert errors[0]["description"]
    assert not Upload.objects.exists()
    assert not MetricValue.objects.exists()
    media = settings.MEDIA_ROOT
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))


def test_a_post_without_a_file_part_names_the_field(api, calls_integration):
    response = api.call("post", f"/api/v3/integrations/{calls_integration.pk}/uploads/", {"other": "x"},
                        content_type="application/json")
    assert response.status_code == 415
    response = api.upload(f"/api/v3/integrations/{calls_integration.pk}/uploads/", None)
    assert response.status_code == 400
    assert "file" in response.json()


def test_a_file_over_15_mb_is_413(api, calls_integration):
    big = b"[" + b" " * (15 * 1024 * 1024 + 100 * 1024) + b"]"
    response = api.upload(f"/api/v3/integrations/{calls_integration.pk}/uploads/",
                          _named("big.json", big, "application/json"))
    assert response.status_code == 413
    assert response.json()["errors"][0]["id"] == "import_too_large"
    assert not Upload.objects.exists()


def test_a_disabled_inbound_integration_refuses_files(api, owner, calls_integration):
    services.update_integration(calls_integration, owner, {"enabled": False})
    response = api.upload(f"/api/v3/integrations/{calls_integration.pk}/uploads/",
                          _named("calls.json", SEED_EXAMPLE, "application/json"))
    assert response.status_code == 403
    assert response.json()["errors"][0]["id"] == "integration_disabled"
    assert not Upload.objects.exists()


def test_another_tenants_token_cannot_send_to_our_integration(api, outsider_token, calls_integration):
    response = api.upload(f"/api/v3/integrations/{calls_integration.pk}/uploads/",
                          _named("calls.json", SEED_EXAMPLE, "application/json"), token=outsider_token)
    assert response.status_code == 404
    assert not Upload.objects.exists()


def test_an_outbound_file_in_sandbox_is_a_dry_run_logged_without_the_secret(api, tenant):
    created = api.post("/api/v3/integrations/", NEW_OUTBOUND).json()
    response = api.upload(f"/api/v3/integrations/{created['id']}/uploads/",
                          _named("calls.json", SEED_EXAMPLE, "application/json"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "dry_run" and body["direction"] == "outbound"
    [call] = body["calls"]
    assert call["dry_run"] is True
    assert call["error"] == ""
    assert call["method"] == "POST"
    assert call["url"] == "https://vendor.example.com/api/v1/data/calls/"
    assert call["status"] is None
    detail = api.get(f"/api/v3/uploads/{body['id']}/").json()
    assert detail["calls"] == body["calls"]
    for seen in api.bodies:
        assert VENDOR_SECRET not in seen


@pytest.fixture
def vendor_allowed(settings):
    """The vendor is a local test server: let the outbound side call loopback."""
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.PORTAL_OUTBOUND_BACKOFF_SECONDS = 0


def test_an_endpoint_on_a_non_public_address_is_refused_unless_allowed(api, settings, httpserver):
    url = httpserver.url_for("/api/v1/data/calls/").replace("localhost", "127.0.0.1")
    response = api.post("/api/v3/integrations/", {**NEW_OUTBOUND, "endpoint": url})
    assert response.status_code == 400
    assert "public addresses" in response.json()["endpoint"][0]
    assert "PORTAL_OUTBOUND_ALLOWED_NETWORKS" not in response.content.decode()
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    assert api.post("/api/v3/integrations/", {**NEW_OUTBOUND, "endpoint": url}).status_code == 201


def test_an_outbound_file_is_delivered_with_its_call_log_and_can_be_resent(
        api, tenant, vendor_allowed, httpserver, django_capture_on_commit_callbacks):
    httpserver.expect_request("/api/v1/data/calls/", method="POST",
                              headers={"Authorization": f"Token {VENDOR_SECRET}"}).respond_with_json(
        {"id": 1, "records": 1, "status": "queued"}, status=201)
    created = api.post("/api/v3/integrations/", {**NEW_OUTBOUND,
                                                 "endpoint": httpserver.url_for("/api/v1/data/calls")}).json()
    assert api.patch(f"/api/v3/integrations/{created['id']}/", {"sandbox": False}).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = api.upload(f"/api/v3/integrations/{created['id']}/uploads/",
                              _named("calls.json", SEED_EXAMPLE, "application/json"))
    assert response.status_code == 201, response.content
    upload_url = f"/api/v3/uploads/{response.json()['id']}/"
    detail = api.get(upload_url).json()
    assert detail["status"] == "delivered"
    [call] = detail["calls"]
    assert (call["attempt"], call["method"], call["status"], call["error"]) == (1, "POST", 201, "")
    assert call["url"] == httpserver.url_for("/api/v1/data/calls/")
    assert call["duration_ms"] >= 0
    [(request, _)] = httpserver.log
    assert request.data == SEED_EXAMPLE

    with django_capture_on_commit_callbacks(execute=True):
        resent = api.post(upload_url + "resend/")
    assert resent.status_code == 202, resent.content
    detail = api.get(upload_url).json()
    assert detail["status"] == "delivered"
    assert len(detail["calls"]) == 2 and len(httpserver.log) == 2
    event = AuditEvent.objects.get(tenant=tenant, action=AuditEvent.Action.UPLOAD_RESENT)
    assert event.actor_label == "API token 'tests'"
    for seen in api.bodies:
        assert VENDOR_SECRET not in seen


def test_a_vendor_refusal_shows_its_error_ids(api, vendor_allowed, httpserver, django_capture_on_commit_callbacks):
    httpserver.expect_request("/api/v1/data/calls/", method="POST").respond_with_json(
        {"errors": [{"id": "import_transform_data", "description": "Missing user"}]}, status=400)
    created = api.post("/api/v3/integrations/", {**NEW_OUTBOUND, "endpoint": httpserver.url_for("/api/v1/data/calls/")})
    pk = created.json()["id"]
    api.patch(f"/api/v3/integrations/{pk}/", {"sandbox": False})
    with django_capture_on_commit_callbacks(execute=True):
        response = api.upload(f"/api/v3/integrations/{pk}/uploads/",
                              _named("calls.json", SEED_EXAMPLE, "application/json"))
    detail = api.get(f"/api/v3/uploads/{response.json()['id']}/").json()
    assert detail["status"] == "not_delivered"
    assert detail["errors"][0]["id"] == "import_transform_data"
    assert [c["status"] for c in detail["calls"]] == [400]


def test_resending_an_inbound_upload_is_refused(api, calls_integration, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        upload = api.upload(f"/api/v3/integrations/{calls_integration.pk}/uploads/",
                            _named("calls.json", SEED_EXAMPLE, "application/json")).json()
    response = api.post(f"/api/v3/uploads/{upload['id']}/resend/")
    assert response.status_code == 409
    assert response.json() == {"detail": "Only an upload to an outbound integration can be resent."}


def test_a_vendor_that_cannot_be_reached_shows_the_error_in_the_call_log(
        api, vendor_allowed, django_capture_on_commit_callbacks):
    import socket

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    created = api.post("/api/v3/integrations/", {**NEW_OUTBOUND, "max_attempts": 1,
                                                 "endpoint": f"http://127.0.0.1:{port}/api/v1/data/calls/"})
    pk = created.json()["id"]
    api.patch(f"/api/v3/integrations/{pk}/", {"sandbox": False})
    with django_capture_on_commit_callbacks(execute=True):
        response = api.upload(f"/api/v3/integrations/{pk}/uploads/",
                              _named("calls.json", SEED_EXAMPLE, "application/json"))
    detail = api.get(f"/api/v3/uploads/{response.json()['id']}/").json()
    assert detail["status"] == "not_delivered"
    [call] = detail["calls"]
    assert call["status"] is None
    assert call["error"].startswith("ConnectionError: ")
    for seen in api.bodies:
        assert VENDOR_SECRET not in seen
