"""Files large enough to take processing's bulk path (COPY on PostgreSQL, more than 1,000 values):
first load, a re-send that replaces values, the next days' file, a file across both, purge."""

import datetime

import pytest
from django.db import connection
from django.db.models import Sum
from django.urls import reverse

from integrations import services
from integrations.protocols.data_integration import values
from uploads.models import Account, MetricValue, Upload

pytestmark = pytest.mark.django_db

USERS = 40
METRICS = ("calls", "talk_minutes", "deals")


@pytest.fixture
def activity_token(activity_integration, owner):
    return services.regenerate_integration_token(activity_integration, owner)


@pytest.fixture
def send(client, activity_token, django_capture_on_commit_callbacks):
    """POST a CSV the way a vendor would; processing runs as the commit ends."""

    def send(body):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/api/v1/data/activity/", data=body, content_type="text/csv",
                                   HTTP_AUTHORIZATION=f"Token {activity_token}")
        assert response.status_code == 201, response.content
        return Upload.objects.get(pk=response.json()["id"])

    return send


def activity_csv(days, calls=1):
    """Two records per (user, day): calls add up to 2 × calls; talk_minutes to 0.1 + 0.2."""
    lines = ["email,date,calls,talk_minutes,deals"]
    for day in days:
        for n in range(USERS):
            email = f"User{n}@Example.com " if n % 2 else f"user{n}@example.com"  # one account either way
            lines.append(f"{email},8/{day}/2016,{calls},0.1,{n % 3}")
            lines.append(f"user{n}@example.com,8/{day}/2016,{calls},0.2,")
    return ("\n".join(lines) + "\n").encode()


def value(email, day, metric):
    return MetricValue.objects.get(account__email=email, date=datetime.date(2016, 8, day), metric__name=metric)


def test_first_file_writes_every_value_exactly(send, tenant):
    upload = send(activity_csv(range(1, 11), calls=3))
    upload.refresh_from_db()
    # deals are empty on every second record and 0 on a third of the users: a sum of one value
    assert (upload.status, upload.records) == ("processed", 2 * USERS * 10)
    assert upload.values_written == MetricValue.objects.count() == 3 * USERS * 10 == 1200
    assert Account.objects.filter(tenant=tenant).count() == USERS
    assert value("user7@example.com", 4, "calls").value == 6.0
    assert value("user7@example.com", 4, "talk_minutes").value == 0.1 + 0.2  # the same float, to the last bit
    assert value("user7@example.com", 4, "deals").value == 1.0
    stored = MetricValue.objects.get(account__email="user5@example.com", date=datetime.date(2016, 8, 10),
                                     metric__name="calls")
    assert (stored.upload_id, stored.tenant_id, stored.integration.key) == (upload.pk, tenant.pk, "activity")


def test_resending_the_same_days_replaces_values(send):
    first = send(activity_csv(range(1, 11), calls=3))
    ids = set(MetricValue.objects.values_list("id", flat=True))
    second = send(activity_csv(range(1, 11), calls=5))
    second.refresh_from_db()
    assert second.status == "processed" and second.values_written == 1200
    assert set(MetricValue.objects.values_list("id", flat=True)) == ids  # the same rows, updated
    assert value("user7@example.com", 4, "calls").value == 10.0
    assert set(MetricValue.objects.values_list("upload", flat=True)) == {second.pk} != {first.pk}


def test_next_days_are_added_and_earlier_days_kept(send):
    first = send(activity_csv(range(1, 11), calls=3))
    later = send(activity_csv(range(11, 21), calls=5))
    assert MetricValue.objects.count() == 2400
    assert value("user7@example.com", 4, "calls").value == 6.0 and value("user7@example.com", 4, "calls").upload == first
    assert value("user7@example.com", 14, "calls").value == 10.0 and value("user7@example.com", 14, "calls").upload == later

    across = send(activity_csv(range(15, 26), calls=7))  # replaces days 15–20, adds 21–25
    assert MetricValue.objects.count() == 3 * USERS * 25
    assert value("user7@example.com", 14, "calls").value == 10.0
    assert value("user7@example.com", 15, "calls").value == 14.0 and value("user7@example.com", 25, "calls").value == 14.0
    assert MetricValue.objects.filter(upload=across).count() == 3 * USERS * 11
    assert MetricValue.objects.filter(metric__name="calls").aggregate(total=Sum("value"))["total"] == (
        USERS * (10 * 6 + 4 * 10 + 11 * 14))


def test_a_file_over_a_few_earlier_values_replaces_them_and_adds_the_rest(send):
    """Day 10 is held already (120 of the file's 1,800 values): on PostgreSQL the new values are
    copied straight into the table and only those 120 replace, keeping their rows."""
    first = send(activity_csv(range(1, 11), calls=3))
    held = value("user7@example.com", 10, "calls").pk
    later = send(activity_csv(range(10, 25), calls=5))
    later.refresh_from_db()
    assert later.status == "processed" and later.values_written == 3 * USERS * 15
    assert MetricValue.objects.count() == 3 * USERS * 24
    replaced = value("user7@example.com", 10, "calls")
    assert (replaced.pk, replaced.value, replaced.upload_id) == (held, 10.0, later.pk)
    assert value("user7@example.com", 9, "calls").value == 6.0 and value("user7@example.com", 9, "calls").upload == first
    assert value("user7@example.com", 24, "talk_minutes").value == 0.1 + 0.2
    assert MetricValue.objects.filter(upload=later).count() == 3 * USERS * 15
    assert MetricValue.objects.filter(upload=first).count() == 3 * USERS * 9


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the split into copied and replaced values is PostgreSQL's")
def test_a_failure_after_the_new_values_were_copied_leaves_nothing_written(send, monkeypatch):
    """All or nothing: the new values are copied first, and go with the rest when replacing fails."""
    first = send(activity_csv(range(1, 11), calls=3))

    def fail(*args):
        raise RuntimeError("the replacing half fails")

    monkeypatch.setattr(values, "_replace_by_copy", fail)
    later = send(activity_csv(range(10, 25), calls=5))
    later.refresh_from_db()
    assert later.status == "failed" and later.values_written == 0
    assert MetricValue.objects.count() == 3 * USERS * 10
    assert set(MetricValue.objects.values_list("upload", flat=True)) == {first.pk}


def test_sending_again_after_a_purge_writes_the_values_anew(send, owner_client, tenant, activity_integration,
                                                          django_capture_on_commit_callbacks):
    send(activity_csv(range(1, 11), calls=3))
    with django_capture_on_commit_callbacks(execute=True):
        page = owner_client.post(reverse("integration_purge", args=[tenant.slug, activity_integration.pk]),
                                 follow=True).content.decode()
    assert "Purged 1,200 metric values" in page and MetricValue.objects.count() == 0
    again = send(activity_csv(range(1, 11), calls=4))
    again.refresh_from_db()
    assert again.values_written == MetricValue.objects.count() == 1200
    assert value("user7@example.com", 4, "calls").value == 8.0
