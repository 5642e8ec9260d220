"""Reference 002, the Upload API, inbound: the portal hosts the token endpoint, UploadData and
GetResults. Everything goes through the front door (the test client, a bearer token from the
real token endpoint); processing runs eagerly once the request's transaction commits."""

import base64
import hashlib
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from django.contrib.auth.hashers import identify_hasher
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone as django_timezone
from oauth2_provider.models import AccessToken, Application, set_token_value

from integrations import services
from integrations.protocols.upload_api.credentials import issue_client_secret
from integrations.protocols.upload_api.models import Dataset, EventRecord, Submission, TimeRecord
from integrations.protocols.upload_api.tasks import clear_expired_tokens
from uploads.models import Account, Upload

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/upload-api/token"
UPLOAD_DATA = "/api/upload-api/UploadData"
GET_RESULTS = "/api/upload-api/GetResults"
SEED_USERNAME = "5471E010-DDEE-4C98-FF8F-08DB2245E372"
# The seed's example body, word for word; only its Key is replaced by the integration's own.
SEED_BODY = {
    "Name": "Sample submission 1",
    "Data": "Reference,StartDate,StartTime,EndDate,EndTime\r\nUser1,12/05/2024,09:00,12/05/2024,17:00",
    "EventData": "Reference,EventStartDate,EventStartTime,EventEndDate,EventEndTime,Description,TimeReference\r\n"
                 "User1,12/05/2024,09:05,12/05/2024,09:30,Meeting,0",
    "Username": SEED_USERNAME,
    "Key": "90CBF21C-33D4-4C32-944A-22A0C416DF89",
    "Overwrite": "false",
}
HEADER = "Reference,StartDate,StartTime,EndDate,EndTime"


def basic(client_id, secret, encode=True):
    """The seed's client authentication: base64(<client_id>:<url_encoded_client_secret>)."""
    pair = f"{client_id}:{quote(secret, safe='') if encode else secret}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def data_rows(*references, day="12/05/2024"):
    return "\r\n".join([HEADER, *(f"{ref},{day},09:00,{day},17:00" for ref in references)])


class Api:
    """A client of the portal's Upload API, as the seed describes one."""

    def __init__(self, client, client_id, secret, key):
        self.client, self.client_id, self.secret, self.key = client, client_id, secret, key
        self._token = None

    def token_response(self, content_type="application/x-www-form-urlencoded", **form):
        body = "&".join(f"{k}={quote(v)}" for k, v in {"grant_type": "client_credentials",
                                                        "scope": "platform_upload_api", **form}.items())
        return self.client.post(TOKEN_URL, body, content_type=content_type,
                                HTTP_AUTHORIZATION=basic(self.client_id, self.secret))

    @property
    def token(self):
        if self._token is None:
            response = self.token_response()
            assert response.status_code == 200, response.content
            self._token = response.json()["access_token"]
        return self._token

    def upload(self, body=None, token=None, raw=None, **fields):
        document = {**SEED_BODY, "Username": self.client_id, "Key": self.key, **fields} if body is None else body
        return self.client.post(UPLOAD_DATA, raw if raw is not None else json.dumps(document),
                                content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token or self.token}")

    def results(self, processing_token, data_key, key=None, token=None):
        response = self.client.get(GET_RESULTS, {"token": processing_token, "dataKey": data_key,
                                                 "key": self.key if key is None else key},
                                   HTTP_AUTHORIZATION=f"Bearer {token or self.token}")
        if response.streaming:  # tableofresultids is written as it is read
            body = b"".join(response.streaming_content)
            response.json = lambda: json.loads(body)
        return response


@pytest.fixture
def hours(tenant, owner):
    return services.create_integration(tenant, owner, name="Hours", protocol="upload_api")


def api_for(client, integration, owner):
    client_id, secret = issue_client_secret(integration, owner)
    key = services.regenerate_integration_token(integration, owner)
    return Api(client, client_id, secret, key)


@pytest.fixture
def api(client, hours, owner):
    return api_for(client, hours, owner)


@pytest.fixture
def seed_api(api):
    """The API, its client id the seed's example Username, so the seed's body goes as it is written."""
    Application.objects.filter(client_id=api.client_id).update(client_id=SEED_USERNAME)
    api.client_id = SEED_USERNAME
    return api


@pytest.fixture
def submit(api, django_capture_on_commit_callbacks):
    """UploadData, processed as the worker would once the request has committed."""
    def send(**fields):
        with django_capture_on_commit_callbacks(execute=True):
            return api.upload(**fields)
    return send


def nothing_stored():
    return not Upload.objects.exists() and not Submission.objects.exists() and not TimeRecord.objects.exists()


# --- The seed's workflow --------------------------------------------------------------------


def test_the_seeds_workflow_token_upload_status_then_result_ids(seed_api, hours, django_capture_on_commit_callbacks):
    # 1. The token: content type written exactly as the seed writes it.
    response = seed_api.token_response(content_type="x-www-form-urlencoded")
    assert response.status_code == 200, response.content
    answer = response.json()
    assert set(answer) == {"access_token", "token_type", "expires_in", "scope"}
    assert (answer["token_type"], answer["expires_in"], answer["scope"]) == ("Bearer", 3600, "platform_upload_api")
    assert response["Cache-Control"] == "no-store"

    # 2. UploadData with the seed's example body (Username and all): the processing token, as a string.
    body = {**SEED_BODY, "Key": seed_api.key}
    with django_capture_on_commit_callbacks(execute=True):
        response = seed_api.upload(body, token=answer["access_token"])
    assert response.status_code == 200, response.content
    processing_token = response.json()
    assert isinstance(processing_token, str) and len(processing_token) == 36

    # 3. GetResults status; 5. tableofresultids.
    status = seed_api.results(processing_token, "status", token=answer["access_token"])
    assert (status.status_code, status.json()) == (200, "completedsuccessfully")
    ids = seed_api.results(processing_token, "tableofresultids", token=answer["access_token"])
    time_record, event_record = TimeRecord.objects.get(), EventRecord.objects.get()
    assert ids.status_code == 200 and ids["Content-Type"] == "application/json"
    assert ids.json() == [{"dataset": "Data", "row": 1, "id": time_record.pk},
                                       {"dataset": "EventData", "row": 1, "id": event_record.pk}]
    assert seed_api.results(processing_token, "feedback").json() == []

    utc = timezone.utc
    assert (time_record.reference, time_record.start, time_record.end, time_record.account) == (
        "User1", datetime(2024, 5, 12, 9, 0, tzinfo=utc), datetime(2024, 5, 12, 17, 0, tzinfo=utc), None)
    assert (event_record.description, event_record.time_reference, event_record.start, event_record.end) == (
        "Meeting", 0, datetime(2024, 5, 12, 9, 5, tzinfo=utc), datetime(2024, 5, 12, 9, 30, tzinfo=utc))
    # It went through the one intake: upload history has it, and nothing secret was stored with it.
    upload = Upload.objects.get()
    assert (upload.integration, upload.channel, upload.status, upload.records, upload.values_written) == (
        hours, "upload_data", "processed", 2, 2)
    assert upload.submitted_via == f"Upload API client {SEED_USERNAME}"
    stored = upload.file.read().decode()
    assert seed_api.key not in stored and json.loads(stored)["Name"] == "Sample submission 1"
    assert "1 time record, 1 event record" in upload.message
    submission = Submission.objects.get()
    assert (submission.token, submission.upload, submission.name) == (processing_token, upload, "Sample submission 1")


def test_status_says_queued_and_output_is_refused_until_processing_has_completed(api):
    processing_token = api.upload().json()  # the commit's callbacks are not run: not processed yet

    assert api.results(processing_token, "status").json() == "queued"
    for data_key in ("tableofresultids", "feedback"):
        response = api.results(processing_token, data_key)
        assert response.status_code == 409
        error = response.json()["errors"][0]
        assert error["id"] == "not_completed" and "status: queued" in error["description"]


# --- The token endpoint ---------------------------------------------------------------------


def test_a_secret_with_plus_slash_equals_and_percent_works_url_encoded(api):
    application = Application.objects.get(client_id=api.client_id)
    application.client_secret = "a+b/c=d%e f&g:h"
    application.save()  # hashed by DOT as it is saved
    api.secret = "a+b/c=d%e f&g:h"

    assert api.token_response().status_code == 200
    unencoded = api.client.post(TOKEN_URL, "grant_type=client_credentials&scope=platform_upload_api",
                                content_type="application/x-www-form-urlencoded",
                                HTTP_AUTHORIZATION=basic(api.client_id, api.secret, encode=False))
    assert unencoded.status_code == 401  # "+" read as a space: the seed says to URL-encode it


@pytest.mark.parametrize("change, status, error", [
    ({"secret": "wrong"}, 401, "invalid_client"),
    ({"form": {"scope": "read"}}, 400, "invalid_scope"),
    ({"form": {"grant_type": "urn:example:unknown"}}, 400, "unsupported_grant_type"),
])
def test_the_token_endpoint_refuses_bad_requests_in_oauths_words(api, change, status, error):
    if "secret" in change:
        api.secret = change["secret"]
    response = api.token_response(**change.get("form", {}))
    assert (response.status_code, response.json()["error"]) == (status, error)


def test_client_secrets_and_access_tokens_are_stored_only_as_hashes(api, hours):
    token = api.token
    application = Application.objects.get(client_id=api.client_id)
    assert application.client_secret != api.secret and identify_hasher(application.client_secret)
    assert (application.client_type, application.authorization_grant_type) == ("confidential", "client-credentials")
    stored = AccessToken.objects.get(application=application)
    assert stored.token == "" and stored.token_checksum == hashlib.sha256(token.encode()).hexdigest()
    assert hours.upload_api_client.application == application


# --- Bearer tokens on the API ---------------------------------------------------------------


def access_token(application, scope, expires_in):
    raw = f"test-token-{scope or 'none'}-{expires_in}"
    token = AccessToken(application=application, scope=scope,
                        expires=django_timezone.now() + timedelta(seconds=expires_in))
    set_token_value(token, raw)
    token.save()
    return raw


@pytest.mark.parametrize("how, status", [("missing", 401), ("unknown", 401), ("expired", 401),
                                         ("without the scope", 403), ("in the query string", 401)])
def test_a_bad_bearer_token_is_refused_and_nothing_is_stored(api, how, status):
    application = Application.objects.get(client_id=api.client_id)
    token = {"unknown": "no-such-token", "expired": access_token(application, "platform_upload_api", -10),
             "without the scope": access_token(application, "", 3600)}.get(how)
    if how == "missing":
        response = api.client.post(UPLOAD_DATA, json.dumps(SEED_BODY), content_type="application/json")
    elif how == "in the query string":
        response = api.client.post(f"{UPLOAD_DATA}?access_token={api.token}", json.dumps(SEED_BODY),
                                   content_type="application/json")
    else:
        response = api.upload(token=token)

    assert response.status_code == status
    assert response.json()["errors"][0]["id"] == ("insufficient_scope" if status == 403 else "invalid_token")
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Bearer ")
    assert nothing_stored()


def test_regenerating_the_client_secret_revokes_its_tokens(api, hours, owner):
    old_token = api.token
    client_id, secret = issue_client_secret(hours, owner)

    assert client_id == api.client_id and secret != api.secret
    assert api.upload(token=old_token).status_code == 401
    assert api.token_response().status_code == 401  # the old secret
    api.secret = secret
    assert api.token_response().status_code == 200


# --- Requests that are themselves wrong -------------------------------------------------------


@pytest.mark.parametrize("change, field, error_id", [
    ({"Name": None}, "Name", "field_required"),
    ({"Name": "  "}, "Name", "field_required"),
    ({"Name": 7}, "Name", "field_invalid"),
    ({"Data": None}, "Data", "field_required"),
    ({"Data": ["a"]}, "Data", "field_invalid"),
    ({"EventData": 3}, "EventData", "field_invalid"),
    ({"Key": None}, "Key", "field_required"),
    ({"Key": "90CBF21C-33D4-4C32-944A-22A0C416DF89"}, "Key", "key_invalid"),
    ({"Overwrite": "yes"}, "Overwrite", "field_invalid"),
    ({"Username": "someone-else"}, "Username", "username_mismatch"),
])
def test_a_wrong_field_is_a_400_naming_it_and_nothing_is_stored(api, change, field, error_id):
    body = {**SEED_BODY, "Username": api.client_id, "Key": api.key, **change}
    body = {name: value for name, value in body.items() if value is not None}

    response = api.upload(body)

    assert response.status_code == 400, response.content
    assert [(e["field"], e["id"]) for e in response.json()["errors"]] == [(field, error_id)]
    assert nothing_stored()


def test_every_wrong_field_is_listed_at_once(api):
    response = api.upload({"Data": "", "Overwrite": 1})
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["Name", "Data", "Overwrite", "Key"]


@pytest.mark.parametrize("raw, said", [
    ("", "empty"), ("{not json", "not valid JSON"), ('["Name"]', "JSON object"), ("[" * 100_000, "nested too deeply"),
])
def test_a_body_that_is_not_a_json_object_is_a_400(api, raw, said):
    response = api.upload(raw=raw)
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert (error["field"], error["id"]) == ("body", "request_not_json") and said in error["description"]
    assert nothing_stored()


def test_a_body_over_15_mb_is_a_400_and_nothing_is_stored(api):
    body = json.dumps({**SEED_BODY, "Username": api.client_id, "Key": api.key, "Data": "x" * (15 * 2 ** 20)})

    response = api.upload(raw=body)

    assert response.status_code == 400
    assert response.json()["errors"][0] | {"description": ""} == {"id": "request_too_large", "field": "body",
                                                                 "description": ""}
    assert nothing_stored()


def test_upload_data_reads_json_whatever_content_type_it_comes_with(api, django_capture_on_commit_callbacks):
    """curl -d sends application/x-www-form-urlencoded unless told otherwise; the seed names no type."""
    body = json.dumps({**SEED_BODY, "Username": api.client_id, "Key": api.key})
    with django_capture_on_commit_callbacks(execute=True):
        response = api.client.post(UPLOAD_DATA, body, content_type="application/x-www-form-urlencoded",
                                   HTTP_AUTHORIZATION=f"Bearer {api.token}")
    assert response.status_code == 200, response.content
    assert api.results(response.json(), "Status").json() == "completedsuccessfully"


def test_the_overwrite_strings_and_booleans_of_the_seed_are_understood(api, submit):
    assert submit(Name="A", Overwrite="false").status_code == 200
    assert submit(Name="A", Overwrite=" TRUE ").status_code == 200
    assert submit(Name="A", Overwrite=True).status_code == 200
    assert submit(Name="A", Overwrite=False).status_code == 400
    assert submit(Name="B").status_code == 200  # no Overwrite at all: false


# --- Overwrite by Name ------------------------------------------------------------------------


def test_overwrite_replaces_a_names_records_and_without_it_the_name_is_refused(api, submit):
    first = submit(Name="X", Data=data_rows("a@example.com", "b@example.com", "c@example.com")).json()
    first_ids = set(TimeRecord.objects.values_list("id", flat=True))
    assert len(first_ids) == 3

    refused = submit(Name="X", Data=data_rows("d@example.com", "e@example.com"))
    assert refused.status_code == 400
    error = refused.json()["errors"][0]
    assert (error["id"], error["field"]) == ("name_taken", "Name") and "Overwrite true" in error["description"]
    assert TimeRecord.objects.count() == 3 and Upload.objects.count() == 1

    second = submit(Name="X", Data=data_rows("d@example.com", "e@example.com"), Overwrite=True).json()
    remaining = TimeRecord.objects.order_by("row")
    assert [r.reference for r in remaining] == ["d@example.com", "e@example.com"]
    assert not first_ids & {r.pk for r in remaining}
    assert api.results(second, "status").json() == "completedsuccessfully"
    ids = api.results(second, "tableofresultids").json()
    assert [i["id"] for i in ids if i["dataset"] == "Data"] == [r.pk for r in remaining]
    replaced = api.results(first, "tableofresultids")
    assert replaced.status_code == 409 and replaced.json()["errors"][0]["id"] == "replaced"
    assert Dataset.objects.get(name="X").live.token == second


def test_a_submission_processed_after_a_later_one_of_its_name_replaces_nothing(
        api, hours, owner, django_capture_on_commit_callbacks):
    """In Sandbox Mode uploads are not kept in arrival order: the later submission must stand."""
    from uploads.processing import process_upload

    older = api.upload(Name="X", Data=data_rows("old@example.com")).json()
    newer = api.upload(Name="X", Data=data_rows("new@example.com"), Overwrite=True).json()
    with django_capture_on_commit_callbacks(execute=False):
        process_upload(Submission.objects.get(token=newer).upload_id)
        process_upload(Submission.objects.get(token=older).upload_id)

    assert list(TimeRecord.objects.values_list("reference", flat=True)) == ["new@example.com"]
    assert Submission.objects.get(token=older).replaced_by.token == newer
    assert "processed first" in Submission.objects.get(token=older).upload.message


# --- Row-level problems: feedback ---------------------------------------------------------------


def test_row_problems_come_back_as_feedback_and_nothing_of_the_submission_is_written(api, submit):
    kept = submit(Name="X", Data=data_rows("a@example.com")).json()
    data = "\r\n".join([HEADER, "ann,31/02/2024,09:00,31/02/2024,17:00", ",12/05/2024,9:00,12/05/2024,8:00",
                        "bob,12/05/2024,25:00,12/05/2024,17:00"])
    events = ("ann,12/05/2024,09:05,12/05/2024,09:30,,3\r\n"
              "ann,12/05/2024,09:05,12/05/2024,09:30,Standup,1,extra")
    response = submit(Name="X", Data=data, EventData=events, Overwrite=True)

    assert response.status_code == 200  # the request itself was fine
    token = response.json()
    assert api.results(token, "status").json() == "completedwitherrors"
    assert api.results(token, "feedback").json() == [
        {"dataset": "Data", "row": 1, "column": "StartDate",
         "message": "“31/02/2024” is not a date written DD/MM/YYYY"},
        {"dataset": "Data", "row": 1, "column": "EndDate", "message": "“31/02/2024” is not a date written DD/MM/YYYY"},
        {"dataset": "Data", "row": 2, "column": "Reference", "message": "required"},
        {"dataset": "Data", "row": 2, "column": "EndDate", "message": "ends (12/05/2024 8:00) before it starts "
                                                                      "(12/05/2024 9:00)"},
        {"dataset": "Data", "row": 3, "column": "StartTime",
         "message": "“25:00” is not a time written hh:mm (00:00 to 23:59)"},
        {"dataset": "EventData", "row": 1, "column": "Description", "message": "required"},
        {"dataset": "EventData", "row": 1, "column": "TimeReference", "message": "“3” is not 0, 1 or 2"},
        {"dataset": "EventData", "row": 2, "column": None,
         "message": "The row has more than the 7 columns of EventData (Reference, EventStartDate, EventStartTime, "
                    "EventEndDate, EventEndTime, Description, TimeReference)."},
    ]
    refused = api.results(token, "tableofresultids")
    assert refused.status_code == 409 and refused.json()["errors"][0]["id"] == "completed_with_errors"
    # All or nothing: the Name still holds the earlier submission's record, and no account was made.
    assert list(TimeRecord.objects.values_list("reference", flat=True)) == ["a@example.com"]
    assert Dataset.objects.get(name="X").live.token == kept
    upload = Submission.objects.get(token=token).upload
    assert upload.status == "failed" and upload.errors[0]["column"] == "Data.StartDate"


def test_a_header_row_is_optional_and_must_name_the_columns_in_order(api, submit):
    without = submit(Name="No header", Data="User1,12/05/2024,09:00,12/05/2024,17:00").json()
    assert api.results(without, "status").json() == "completedsuccessfully"

    swapped = submit(Name="Swapped", Data="Reference,StartTime,StartDate,EndDate,EndTime\r\n"
                                          "User1,09:00,12/05/2024,12/05/2024,17:00").json()
    assert api.results(swapped, "feedback").json() == [{
        "dataset": "Data", "row": None, "column": "StartDate",
        "message": "The header row names the columns Reference, StartTime, StartDate, EndDate, EndTime; Data has "
                   "these, in this order: Reference, StartDate, StartTime, EndDate, EndTime."}]


def test_out_of_sandbox_a_failed_submission_sent_again_with_overwrite_releases_the_ones_behind_it(
        api, submit, hours, owner):
    services.set_sandbox(hours, owner, False)
    failed = submit(Name="X", Data=data_rows("a@example.com", day="31/02/2024")).json()
    behind = submit(Name="Y", Data=data_rows("y@example.com")).json()
    assert api.results(behind, "status").json() == "waiting"  # held by the failed one, as every protocol's are

    fixed = submit(Name="X", Data=data_rows("a@example.com"), Overwrite=True).json()

    assert api.results(failed, "status").json() == "completedwitherrors"
    assert Submission.objects.get(token=failed).upload.status == "skipped"
    assert api.results(behind, "status").json() == "completedsuccessfully"
    assert api.results(fixed, "status").json() == "completedsuccessfully"
    assert sorted(TimeRecord.objects.values_list("reference", flat=True)) == ["a@example.com", "y@example.com"]


# --- References and accounts --------------------------------------------------------------------


def test_an_email_reference_is_the_tenants_account_and_other_references_are_kept_as_text(api, submit, tenant):
    known = Account.objects.create(tenant=tenant, email="jason@yourcompany.com")
    submit(Name="X", Data=data_rows("Jason@YourCompany.com", "new@yourcompany.com", "EMP-042"))

    records = {r.reference: r.account for r in TimeRecord.objects.select_related("account")}
    assert records["Jason@YourCompany.com"] == known
    assert records["new@yourcompany.com"].email == "new@yourcompany.com"
    assert records["new@yourcompany.com"].tenant == tenant
    assert records["EMP-042"] is None


def test_unknown_emails_can_be_refused_instead(api, submit, hours, owner):
    services.update_integration(hours, owner, {"settings": {"unknown_email": "reject"}})
    token = submit(Name="X", Data=data_rows("nobody@yourcompany.com", "EMP-1")).json()

    assert api.results(token, "feedback").json() == [{
        "dataset": "Data", "row": 1, "column": "Reference",
        "message": "No account in this organisation has the email nobody@yourcompany.com."}]
    assert not Account.objects.exists()


# --- Tenant isolation -------------------------------------------------------------------------


def test_another_tenants_client_gets_nothing_of_this_tenants(
        api, submit, client, hours, owner, other_tenant, outsider, api_token):
    theirs = services.create_integration(other_tenant, outsider, name="Their hours", protocol="upload_api")
    their_api = api_for(client, theirs, outsider)
    services.set_sandbox(hours, owner, False)
    ours = submit(Name="Ours", Data=data_rows("a@example.com")).json()

    unknown = their_api.results("00000000-0000-4000-8000-000000000000", "status")
    for data_key in ("status", "feedback", "tableofresultids"):
        response = their_api.results(ours, data_key)
        assert (response.status_code, response.json()) == (404, unknown.json())
    # Our key in their body is no key of theirs; our token is not theirs to use the other way round.
    assert their_api.upload(Key=api.key).json()["errors"][0]["id"] == "key_invalid"
    assert api.results(ours, "status", token=their_api.token).json()["errors"][0]["id"] == "key_invalid"
    # The REST API: their token lists none of ours; a bearer token is no REST API token at all.
    _, their_rest_token = services.issue_api_token(other_tenant, outsider, "theirs")
    for path in ("/api/v3/upload-api/submissions/", "/api/v3/upload-api/time-records/"):
        assert client.get(path, HTTP_AUTHORIZATION=f"Token {their_rest_token}").json()["results"] == []
        assert len(client.get(path, HTTP_AUTHORIZATION=f"Token {api_token}").json()["results"]) == 1
        assert client.get(path, HTTP_AUTHORIZATION=f"Bearer {their_api.token}").status_code == 401
    assert client.get(f"/api/v3/upload-api/time-records/?integration={hours.pk}",
                      HTTP_AUTHORIZATION=f"Token {their_rest_token}").json()["results"] == []


# --- Where the records are seen -------------------------------------------------------------------


def test_the_rest_api_lists_submissions_and_records_with_their_ids(client, api, submit, hours, owner, api_token):
    token = submit(Name="X", Data=data_rows("a@example.com", "EMP-2")).json()
    auth = {"HTTP_AUTHORIZATION": f"Token {api_token}"}

    # In Sandbox Mode an integration's records are listed only when it is named.
    assert client.get("/api/v3/upload-api/time-records/", **auth).json()["results"] == []
    named = client.get(f"/api/v3/upload-api/time-records/?integration={hours.pk}", **auth).json()["results"]
    records = list(TimeRecord.objects.order_by("-id"))
    assert [(r["id"], r["row"], r["reference"], r["email"], r["name"], r["processing_token"]) for r in named] == [
        (records[0].pk, 2, "EMP-2", None, "X", token), (records[1].pk, 1, "a@example.com", "a@example.com", "X", token)]
    assert named[1]["start"] == "2024-05-12T09:00:00Z"
    events = client.get(f"/api/v3/upload-api/event-records/?integration={hours.pk}", **auth).json()["results"]
    assert [(e["description"], e["time_reference"]) for e in events] == [("Meeting", 0)]
    submissions = client.get("/api/v3/upload-api/submissions/", **auth).json()["results"]
    assert [(s["processing_token"], s["status"], s["upload"]) for s in submissions] == [
        (token, "completedsuccessfully", Upload.objects.get().pk)]

    services.set_sandbox(hours, owner, False)
    assert len(client.get("/api/v3/upload-api/time-records/?name=X", **auth).json()["results"]) == 2
    upload = Upload.objects.get().pk
    assert len(client.get(f"/api/v3/upload-api/time-records/?upload={upload}", **auth).json()["results"]) == 2
    assert client.get(f"/api/v3/upload-api/time-records/?upload={upload + 1}", **auth).json()["results"] == []
    assert client.get("/api/v3/upload-api/time-records/?name=Y", **auth).json()["results"] == []


def test_the_openapi_schema_describes_the_record_endpoints(client):
    schema = client.get("/api/v3/schema/", headers={"Accept": "application/json"}).json()
    for path in ("/api/v3/upload-api/submissions/", "/api/v3/upload-api/time-records/",
                 "/api/v3/upload-api/event-records/"):
        parameters = {p["name"] for p in schema["paths"][path]["get"]["parameters"]}
        assert {"integration", "name", "processing_token", "upload"} <= parameters, path
    assert not any("UploadData" in path or "GetResults" in path for path in schema["paths"])


def test_the_credentials_tab_issues_the_client_secret_once_and_documents_the_calls(
        client, owner, viewer, hours, tenant):
    client.force_login(owner)
    tab = reverse("integration_credentials", args=[tenant.slug, hours.pk])
    page = client.get(tab).content.decode()
    assert "Generate client ID and secret" in page and "http://testserver/api/upload-api/token" in page
    assert "http://testserver/api/upload-api/UploadData" in page and "/api/upload-api/GetResults" in page

    issued = client.post(reverse("upload_api_client_secret", args=[tenant.slug, hours.pk]))
    page = issued.content.decode()
    application = hours.upload_api_client.application
    secret = page.split('id="new-client-secret">')[1].split("<")[0]
    assert issued["Cache-Control"] == "no-store" and "Copy this client secret now" in page
    assert application.client_id in page and application.client_secret not in page
    assert Api(client, application.client_id, secret, "").token_response().status_code == 200

    again = client.get(tab).content.decode()
    assert secret not in again and "Regenerate client secret" in again and application.client_id in again
    assert "CLIENT_ID=" + application.client_id in again

    client.force_login(viewer)
    assert client.post(reverse("upload_api_client_secret", args=[tenant.slug, hours.pk])).status_code == 403
    assert "Regenerate client secret" not in client.get(tab).content.decode()


def test_another_tenants_member_cannot_see_or_issue_anything(outsider_client, hours, tenant):
    for name in ("upload_api_records", "integration_credentials"):
        assert outsider_client.get(reverse(name, args=[tenant.slug, hours.pk])).status_code == 404
    assert outsider_client.post(reverse("upload_api_client_secret", args=[tenant.slug, hours.pk])).status_code == 404


def test_the_records_tab_lists_names_and_records_with_their_ids(owner_client, api, submit, hours, tenant):
    token = submit(Name="Week 19", Data=data_rows("a@example.com", "EMP-2")).json()

    page = owner_client.get(reverse("upload_api_records", args=[tenant.slug, hours.pk])).content.decode()
    assert "Week 19" in page and token in page and "Meeting" in page
    for record in TimeRecord.objects.all():
        assert f'<td class="num">{record.pk}</td>' in page
    assert reverse("upload_detail", args=[tenant.slug, Upload.objects.get().pk]) in page
    tabs = owner_client.get(reverse("integration_settings", args=[tenant.slug, hours.pk])).content.decode()
    assert reverse("upload_api_records", args=[tenant.slug, hours.pk]) in tabs


def test_the_admin_shows_records_and_submissions_without_secrets(admin_client, api, submit):
    submit(Name="X")
    for path in ("/admin/upload_api/timerecord/", "/admin/upload_api/eventrecord/", "/admin/upload_api/submission/",
                 "/admin/upload_api/dataset/", "/admin/upload_api/uploadapiclient/"):
        response = admin_client.get(path)
        assert response.status_code == 200, path
        assert api.secret not in response.content.decode() and api.key not in response.content.decode()
    assert str(TimeRecord.objects.get().pk) in admin_client.get("/admin/upload_api/timerecord/").content.decode()


# --- A submission sent as a file, purge, and expired tokens -----------------------------------------


def test_a_submission_sent_from_the_upload_form_is_processed_and_gets_a_token(
        owner_client, tenant, hours, django_capture_on_commit_callbacks):
    document = {"Name": "From the form", "Data": data_rows("a@example.com")}
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("upload_create", args=[tenant.slug]), {
            "integration": hours.pk,
            "file": SimpleUploadedFile("week.json", json.dumps(document).encode(), "application/json")})

    upload = Upload.objects.get()
    assert (upload.status, upload.values_written) == ("processed", 1), upload.errors
    assert upload.upload_api_submission.name == "From the form"

    with_key = {**document, "Name": "Keyed", "Key": "secret"}
    response = owner_client.post(reverse("upload_create", args=[tenant.slug]), {
        "integration": hours.pk,
        "file": SimpleUploadedFile("k.json", json.dumps(with_key).encode(), "application/json")})
    assert "Leave Key out" in response.content.decode() and Upload.objects.count() == 1


def test_purge_deletes_the_records_and_frees_the_names(api, submit, hours, owner):
    from uploads.purge import purge_integration

    token = submit(Name="X").json()
    counts = purge_integration(hours, owner)

    assert counts["values"] == 2 and not TimeRecord.objects.exists() and not EventRecord.objects.exists()
    assert api.results(token, "status").json() == "purged"
    assert submit(Name="X").status_code == 200  # the Name is free again


def test_expired_access_tokens_are_deleted_by_the_beat_task(settings, api):
    application = Application.objects.get(client_id=api.client_id)
    access_token(application, "platform_upload_api", -10)
    live = api.token

    clear_expired_tokens()

    assert [t.token_checksum for t in AccessToken.objects.all()] == [hashlib.sha256(live.encode()).hexdigest()]
    schedule = settings.CELERY_BEAT_SCHEDULE["clear-expired-upload-api-tokens"]
    assert schedule["task"] == clear_expired_tokens.name


def test_deleting_the_integration_deletes_its_oauth_client_and_tokens(api, hours, owner):
    api.token
    services.delete_integration(hours, owner)
    assert not Application.objects.exists() and not AccessToken.objects.exists()


# --- The demo ---------------------------------------------------------------------------------------


def test_the_demo_has_an_upload_api_integration_with_records_and_fresh_credentials(client, tenant, owner):
    from integrations import registry

    protocol = registry.get("upload_api")
    first = protocol.demo(tenant, owner, "http://testserver")
    [entry] = protocol.demo(tenant, owner, "http://testserver")

    shown = ("protocol", "direction", "token_url", "upload_data_url", "get_results_url")
    assert {key: entry[key] for key in shown} == {
        "protocol": "upload_api", "direction": "inbound", "token_url": "http://testserver/api/upload-api/token",
        "upload_data_url": "http://testserver/api/upload-api/UploadData",
        "get_results_url": "http://testserver/api/upload-api/GetResults"}
    assert entry["client_id"] == first[0]["client_id"]
    assert entry["client_secret"] != first[0]["client_secret"] and entry["key"] != first[0]["key"]
    assert TimeRecord.objects.count() == 3 and EventRecord.objects.count() == 1  # once, not once per run
    assert Upload.objects.get().status == "processed"

    api = Api(client, entry["client_id"], entry["client_secret"], entry["key"])
    token = Submission.objects.get().token
    assert api.results(token, "status").json() == "completedsuccessfully"
    assert len(api.results(token, "tableofresultids").json()) == 4
    assert Api(client, entry["client_id"], first[0]["client_secret"], "").token_response().status_code == 401
