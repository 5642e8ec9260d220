"""A large file is parsed once: the request's check stores its values summarized (the upload's
`prepared` file), processing reads them back instead of the file, and anything doubtful about
the summary (a Data Format changed since, a file that cannot be read) sends processing back to
the file itself."""

import datetime
import io

import pytest

from integrations import services
from integrations.models import Metric
from integrations.protocols.data_integration import protocol
from uploads import processing, purge
from uploads.models import MetricValue, Upload

pytestmark = pytest.mark.django_db

USERS, DAYS, REPEATS = 60, 28, 18


def activity_csv(calls=3):
    """REPEATS records per (user, day), just over 1 MiB; calls only in the first two of them: 2 × calls."""
    lines = ["email,date,calls,talk_minutes,deals"]
    for repeat in range(REPEATS):
        for day in range(1, DAYS + 1):
            for n in range(USERS):
                email = f"User{n}@Example.com " if n % 2 else f"user{n}@example.com"
                lines.append(f"{email},8/{day}/2016,{calls if repeat < 2 else ''},0.{repeat},{n % 3 if repeat else ''}")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def post(client, activity_integration, owner):
    """POST a CSV to the activity integration; nothing is processed yet (the commit hooks do not run)."""
    token = services.regenerate_integration_token(activity_integration, owner)

    def post(body):
        response = client.post("/api/v1/data/activity/", data=body, content_type="text/csv",
                               HTTP_AUTHORIZATION=f"Token {token}")
        assert response.status_code == 201, response.content
        return Upload.objects.get(pk=response.json()["id"])

    return post


def stored_values():
    return sorted(MetricValue.objects.values_list("metric__name", "account__email", "date", "value"))


def exists(name):
    return Upload._meta.get_field("file").storage.exists(name)


def test_processing_reads_the_summary_not_the_file(post, monkeypatch, django_capture_on_commit_callbacks):
    upload = post(activity_csv())
    assert upload.size_bytes >= protocol.PREPARE_FROM_BYTES
    prepared = upload.prepared.name
    assert prepared and exists(prepared) and exists(upload.file.name)

    monkeypatch.setattr(protocol, "parse_upload", lambda *a, **k: pytest.fail("the file was parsed again"))
    with django_capture_on_commit_callbacks(execute=True):
        processing.process_upload(upload.pk)
    upload.refresh_from_db()
    assert (upload.status, upload.records, upload.values_written) == ("processed", REPEATS * DAYS * USERS, 3 * DAYS * USERS)
    calls = MetricValue.objects.get(account__email="user7@example.com", date=datetime.date(2016, 8, 4),
                                    metric__name="calls")
    assert calls.value == 6.0 and calls.upload_id == upload.pk
    # Read, then deleted with the commit; the file itself stays.
    assert upload.prepared.name == "" and not exists(prepared) and exists(upload.file.name)


def test_the_summary_gives_the_values_the_file_gives(post, monkeypatch):
    monkeypatch.setattr(protocol, "PREPARE_FROM_BYTES", 10 ** 9)
    parsed = post(activity_csv())
    assert not parsed.prepared
    processing.process_upload(parsed.pk)
    from_file = stored_values()
    MetricValue.objects.all().delete()

    monkeypatch.undo()
    summarized = post(activity_csv())
    assert summarized.prepared
    processing.process_upload(summarized.pk)
    assert stored_values() == from_file and len(from_file) == 3 * DAYS * USERS


def test_a_data_format_changed_since_the_check_reads_the_file_again(post):
    upload = post(activity_csv(calls=3))
    Metric.objects.filter(integration=upload.integration, name="calls").update(aggregation="max")
    processing.process_upload(upload.pk)
    upload.refresh_from_db()
    assert upload.status == "processed"
    calls = MetricValue.objects.get(account__email="user7@example.com", date=datetime.date(2016, 8, 4),
                                    metric__name="calls")
    assert calls.value == 3.0  # the maximum, as the Data Format says now; the summary held the sum, 6


def test_an_unreadable_summary_reads_the_file_again(post):
    upload = post(activity_csv())
    with upload.prepared.storage.open(upload.prepared.name, "wb") as broken:
        broken.write(b"PK\x03\x04 not a zip file")
    processing.process_upload(upload.pk)
    upload.refresh_from_db()
    assert upload.status == "processed" and upload.values_written == 3 * DAYS * USERS


def test_purge_and_delete_take_the_summary_along(post, activity_integration, owner,
                                                  django_capture_on_commit_callbacks):
    services.set_sandbox(activity_integration, owner, True)
    purged, deleted = post(activity_csv()), post(activity_csv())
    assert purged.prepared and deleted.prepared
    with django_capture_on_commit_callbacks(execute=True):
        deleted.delete()
    assert not exists(deleted.prepared.name) and not exists(deleted.file.name)

    with django_capture_on_commit_callbacks(execute=True):
        purge.purge_integration(activity_integration, owner)
    assert not exists(purged.prepared.name) and not exists(purged.file.name)
    purged.refresh_from_db()
    assert (purged.status, purged.prepared.name) == ("purged", "")


def test_small_and_outbound_files_store_no_summary(post, activity_integration):
    small = post(b"email,date,calls,talk_minutes,deals\nuser1@example.com,8/1/2016,1,2,3\n")
    assert not small.prepared
    activity_integration.direction = "outbound"  # not saved: the check is what is asked here
    checked = activity_integration.protocol_spec.check(activity_integration, io.BytesIO(activity_csv()), "text/csv")
    assert checked.records == REPEATS * DAYS * USERS and checked.prepared is None
