"""A File Upload API token linked to a data integration (reference 000): its CSV and JSON files are
processed into that integration's values exactly as a seed-000 upload of the same file would be
(same values, same errors, all or nothing), but in pieces. Every comparison here sends the same
bytes both ways: to the seed-000 endpoint of one integration, and through the File Upload API,
cut into pieces of a few hundred bytes, to a twin integration."""

import json

import pytest

from integrations import services
from integrations.protocols.file_upload import tokens
from uploads.models import Account, MetricValue, Upload

pytestmark = pytest.mark.django_db

METRICS = [
    {"name": "calls", "source_key": "calls", "aggregation": "sum"},
    {"name": "longest", "source_key": "talk_minutes", "aggregation": "max"},
    {"name": "shortest", "source_key": "talk_minutes", "aggregation": "min"},
    {"name": "deals", "source_key": "deals", "aggregation": "last"},
    {"name": "records", "source_key": "calls", "aggregation": "count"},
]


@pytest.fixture(autouse=True)
def small_pieces(settings):
    settings.PORTAL_FILE_UPLOAD_CHUNK_BYTES = 200  # a few records per piece


def twins(tenant, owner, data_format, **settings):
    """Two integrations alike but for their data type: one for seed 000's endpoint, one for files."""
    made = []
    settings = {"field_keys": ["email", "date", "calls", "talk_minutes", "deals"], "user_key": "email",
                "date_key": "date", "date_format": "M/D/YYYY", **settings}
    for data_type in ("direct", "files"):
        integration = services.create_integration(
            tenant, owner, name=f"Activity {data_type}", data_type=f"{data_type}-{data_format}",
            data_format=data_format, metrics=METRICS, **settings)
        made.append(integration)
    return made


@pytest.fixture
def both(client, tenant, owner, django_capture_on_commit_callbacks):
    """Send the same bytes to seed 000's endpoint (direct) and through the File Upload API (files).
    Returns (direct: the 201 upload or the 400 errors, files: the processed or failed upload)."""

    def both(direct, files, data, extension):
        auth = services.regenerate_integration_token(direct, owner)
        content_type = "application/json" if extension == "json" else "text/csv"
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/api/v1/data/{direct.key}/", data=data, content_type=content_type,
                                   HTTP_AUTHORIZATION=f"Token {auth}")
        direct_result = (Upload.objects.get(pk=response.json()["id"]) if response.status_code == 201
                         else response.json()["errors"])
        _, token = tokens.issue(tenant, owner, f"files {Upload.objects.count()}", files)
        answer = client.post("/api/v1/file-upload/", json.dumps({"filename": f"activity.{extension}"}),
                             content_type="application/json", HTTP_AUTH_API_TOKEN=token)
        url = answer.json()["url"].removeprefix("http://testserver")
        with django_capture_on_commit_callbacks(execute=True):
            assert client.generic("PUT", url, data, content_type="", CONTENT_LENGTH=str(len(data))).status_code == 200
        services.revoke_api_token(tokens.ApiToken.objects.find(token), owner)
        return direct_result, Upload.objects.filter(integration__protocol="file_upload").latest("id")

    return both


def values(integration):
    return {(v.account.email, str(v.date), v.metric.name): v.value
            for v in MetricValue.objects.filter(integration=integration).select_related("account", "metric")}


def activity_csv(rows):
    return ("email,date,calls,talk_minutes,deals\n" + "".join(f"{r}\n" for r in rows)).encode()


GOOD_ROWS = [f"user{n % 7}@example.com,8/{16 + n % 3}/2016,{n % 5},{(n * 7) % 60}.5,{n % 4}" for n in range(90)]


def test_a_csv_in_pieces_gives_the_values_of_a_seed_000_upload(tenant, owner, both):
    direct, files = twins(tenant, owner, "csv")
    data = activity_csv(GOOD_ROWS + ['"quoted@example.com","8/16/2016","3","1.5","2"',
                                     'Line@Example.com , 8/17/2016,, ,'])
    processed, upload = both(direct, files, data, "csv")
    assert processed.status == upload.status == Upload.Status.PROCESSED, upload.errors
    assert upload.records == processed.records == 92 and len(data) > 10 * 200  # many pieces
    assert values(files) == values(direct) and upload.values_written == processed.values_written
    assert upload.message == "92 records processed into Activity files"


def test_quoted_line_ends_are_not_cut(tenant, owner, both):
    direct, files = twins(tenant, owner, "csv", field_keys=["email", "date", "calls", "talk_minutes", "deals", "note"])
    note = '"a note\nthat goes on\n""quoted""\nfor lines ' + "x" * 150 + '"'
    data = ("email,date,calls,talk_minutes,deals,note\n"
            + "".join(f"{r},{note}\n" for r in GOOD_ROWS[:20])).encode()
    processed, upload = both(direct, files, data, "csv")
    assert upload.status == Upload.Status.PROCESSED, upload.errors
    assert upload.records == 20 and values(files) == values(direct)


@pytest.mark.parametrize("data", [
    pytest.param(activity_csv(GOOD_ROWS[:30] + ["bad@example.com,13/45/2016,1,1,1"] + GOOD_ROWS[:20]
                              + ["worse@example.com,8/16/2016,three,1,1"] + GOOD_ROWS[:5]), id="row errors"),
    pytest.param(activity_csv(GOOD_ROWS[:40] + ["no-at-sign,8/16/2016,1,1,1"] * 130), id="more than 100 errors"),
    pytest.param(activity_csv(GOOD_ROWS[:40] + ["x@example.com,8/16/2016,1,1,1,surplus"] + GOOD_ROWS[:9]),
                 id="a row with too many fields"),
    pytest.param(b"email,date,calls,talk_minutes\n" + b"a@example.com,8/16/2016,1,1\n" * 50, id="missing field key"),
    pytest.param(b"email,date,calls,talk_minutes,deals,calls\n" + b"a@example.com,8/16/2016,1,1,1,1\n" * 20,
                 id="a column named twice"),
    pytest.param(b"email,date,calls,talk_minutes,deals\n", id="header only"),
    pytest.param(b"", id="empty"),
    pytest.param(activity_csv(GOOD_ROWS[:12] + [",8/16/2016,1,1,1"] + GOOD_ROWS[:30]), id="no user"),
])
def test_a_bad_csv_fails_with_the_errors_of_a_seed_000_upload_and_writes_nothing(tenant, owner, both, data):
    direct, files = twins(tenant, owner, "csv")
    accounts = Account.objects.count()
    errors, upload = both(direct, files, data, "csv")
    assert isinstance(errors, list), "seed 000 should refuse this file"
    assert upload.status == Upload.Status.FAILED and upload.errors == errors
    # All or nothing: no value, and no account (pieces before the bad one made some, rolled back).
    assert values(files) == {} and Account.objects.count() == accounts


def flat_records(n, **extra):
    return [{"email": f"user{i % 6}@example.com", "date": f"8/{16 + i % 2}/2016", "calls": i % 4,
             "talk_minutes": f"{i % 9}.25", "deals": i % 3, **extra} for i in range(n)]


def test_a_json_list_in_pieces_gives_the_values_of_a_seed_000_upload(tenant, owner, both):
    direct, files = twins(tenant, owner, "json")
    records = flat_records(60)
    for record in records[30:]:
        del record["deals"]  # whole pieces without this key: empty values there, not a missing key
    records[5] = {"user": {"email": "Nested@Example.com"}, "email": "nested@example.com", "date": "8/16/2016",
                  "calls": "7", "talk_minutes": 1, "deals": 2}
    data = json.dumps(records, indent=1).encode()
    processed, upload = both(direct, files, data, "json")
    assert upload.status == processed.status == Upload.Status.PROCESSED, upload.errors
    assert upload.records == 60 and values(files) == values(direct)


def test_one_json_object_is_one_record(tenant, owner, both):
    direct, files = twins(tenant, owner, "json")
    processed, upload = both(direct, files, json.dumps(flat_records(1)[0]).encode(), "json")
    assert upload.status == Upload.Status.PROCESSED and upload.records == 1 and values(files) == values(direct)


@pytest.mark.parametrize("data", [
    pytest.param(json.dumps(flat_records(30), indent=2).encode()[:-40] + b", oops]", id="syntax error"),
    pytest.param(json.dumps(flat_records(20) + [3, "x"] + flat_records(30) + [[]]).encode(), id="not objects"),
    pytest.param(json.dumps(flat_records(25) + [{**flat_records(1)[0], "calls": "many"}]).encode(), id="row error"),
    pytest.param(json.dumps([{k: v for k, v in r.items() if k != "deals"} for r in flat_records(40)]).encode(),
                 id="a key no record has"),
    pytest.param(json.dumps(flat_records(20)).encode() + b" [1]", id="extra data"),
    pytest.param(b"42", id="not a list"),
    pytest.param(b"[]", id="no records"),
    pytest.param(b"  ", id="empty"),
    pytest.param(json.dumps(flat_records(10)).encode()[:-1] + b"\xff]", id="not UTF-8"),
    pytest.param(json.dumps(flat_records(20) + [{**flat_records(1)[0], "deals": {"n": 1}}]).encode(), id="nested"),
])
def test_a_bad_json_fails_with_the_errors_of_a_seed_000_upload(tenant, owner, both, data):
    direct, files = twins(tenant, owner, "json", flatten_json=False)
    errors, upload = both(direct, files, data, "json")
    assert isinstance(errors, list), "seed 000 should refuse this file"
    assert upload.status == Upload.Status.FAILED and upload.errors == errors
    assert values(files) == {}


def test_a_file_of_the_wrong_format_is_refused_as_seed_000_refuses_it(tenant, owner, both):
    direct, files = twins(tenant, owner, "csv")
    errors, upload = both(direct, files, json.dumps(flat_records(3)).encode(), "json")
    assert upload.status == Upload.Status.FAILED and upload.errors == errors
    assert upload.errors[0]["id"] == "import_transform_data"


def test_sending_the_same_file_again_replaces_values(tenant, owner, both):
    direct, files = twins(tenant, owner, "csv")
    data = activity_csv(GOOD_ROWS)
    both(direct, files, data, "csv")
    first = values(files)
    both(direct, files, data, "csv")
    assert values(files) == first == values(direct)


def test_linking_is_per_token_and_applies_to_urls_issued_after(client, tenant, owner, activity_integration,
                                                                 django_capture_on_commit_callbacks):
    row, token = tokens.issue(tenant, owner, "CRM")
    data = activity_csv(GOOD_ROWS[:5])
    before = client.post("/api/v1/file-upload/", json.dumps({"filename": "a.csv"}), content_type="application/json",
                         HTTP_AUTH_API_TOKEN=token).json()["url"]
    tokens.link(row, activity_integration, owner)
    after = client.post("/api/v1/file-upload/", json.dumps({"filename": "b.csv"}), content_type="application/json",
                        HTTP_AUTH_API_TOKEN=token).json()["url"]
    for url in (before, after):
        with django_capture_on_commit_callbacks(execute=True):
            client.generic("PUT", url.removeprefix("http://testserver"), data, content_type="")
    kept, processed = Upload.objects.order_by("id")
    assert kept.records == 0 and "linked to no data integration" in kept.message
    assert processed.status == Upload.Status.PROCESSED and processed.records == 5
    assert MetricValue.objects.filter(integration=activity_integration, upload=processed).exists()


def test_out_of_sandbox_a_failed_file_holds_the_later_ones(client, tenant, owner, activity_integration,
                                                            django_capture_on_commit_callbacks, owner_client):
    """Seed 000's Sandbox rules, applied to the File Upload API integration's files."""
    _, token = tokens.issue(tenant, owner, "CRM", activity_integration)
    files = tenant.integrations.get(protocol="file_upload")
    services.set_sandbox(files, owner, False)

    def send(data):
        url = client.post("/api/v1/file-upload/", json.dumps({"filename": "a.csv"}), content_type="application/json",
                          HTTP_AUTH_API_TOKEN=token).json()["url"]
        with django_capture_on_commit_callbacks(execute=True):
            client.generic("PUT", url.removeprefix("http://testserver"), data, content_type="")
        return Upload.objects.latest("id")

    bad = send(activity_csv(["x@example.com,not a date,1,1,1"]))
    good = send(activity_csv(GOOD_ROWS[:3]))
    assert bad.status == Upload.Status.FAILED and not bad.sandbox
    assert Upload.objects.get(pk=good.pk).status == Upload.Status.WAITING
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(f"/t/{tenant.slug}/uploads/{bad.pk}/skip/")
    assert Upload.objects.get(pk=good.pk).status == Upload.Status.PROCESSED


def test_a_deleted_data_integration_fails_the_file(client, tenant, owner, activity_integration,
                                                   django_capture_on_commit_callbacks):
    _, token = tokens.issue(tenant, owner, "CRM", activity_integration)
    url = client.post("/api/v1/file-upload/", json.dumps({"filename": "a.csv"}), content_type="application/json",
                      HTTP_AUTH_API_TOKEN=token).json()["url"]
    services.delete_integration(activity_integration, owner)
    with django_capture_on_commit_callbacks(execute=True):
        client.generic("PUT", url.removeprefix("http://testserver"), activity_csv(GOOD_ROWS[:3]), content_type="")
    upload = Upload.objects.get()
    assert upload.status == Upload.Status.FAILED and upload.errors[0]["id"] == "integration_gone"
