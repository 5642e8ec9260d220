"""End to end: an outbound integration sends a file to the portal's own seed-000 endpoint (the
live server), and the inbound side stores its values. Both halves of seed 000 meet here."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from integrations import services
from uploads.models import CallLog
from uploads.models import MetricValue, Upload

ROWS = [{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"},
        {"email": "ann@yourcompany.com", "date": "8/16/2016", "calls": 5}]


@pytest.mark.django_db(transaction=True)
def test_outbound_delivers_to_the_portals_own_inbound_endpoint(
        live_server, settings, tenant, owner, owner_client, calls_integration, caplog):
    settings.PORTAL_OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    inbound_token = services.regenerate_integration_token(calls_integration, owner)
    outbound = services.create_integration(
        tenant, owner, name="Calls to ourselves", direction="outbound", data_type="calls", data_format="json",
        field_keys=["email", "date", "calls"],
        endpoint_url=f"{live_server.url}/api/v1/data/calls",  # the client adds the trailing slash
        credentials={"auth_token": inbound_token},
    )
    services.set_sandbox(outbound, owner, False)

    response = owner_client.post(reverse("upload_create", args=[tenant.slug]), {
        "integration": outbound.pk,
        "file": SimpleUploadedFile("calls.json", json.dumps(ROWS).encode(), "application/json"),
    })

    sent = Upload.objects.get(integration=outbound)
    assert response.status_code == 302 and sent.status == Upload.Status.DELIVERED, sent.message
    call = CallLog.objects.get(upload=sent)
    assert call.status_code == 201 and call.url == f"{live_server.url}/api/v1/data/calls/"
    received = Upload.objects.get(integration=calls_integration)
    assert json.loads(call.response_excerpt)["id"] == received.pk
    assert received.records == 2 and received.channel == "api"
    values = {(v.account.email, str(v.date), v.metric.name): v.value
              for v in MetricValue.objects.filter(integration=calls_integration).select_related("account", "metric")}
    assert values == {("jason@yourcompany.com", "2016-08-16", "calls"): 3.0,
                      ("ann@yourcompany.com", "2016-08-16", "calls"): 5.0}

    page = owner_client.get(sent.get_absolute_url()).content.decode()
    stored = json.dumps(list(CallLog.objects.values()), default=str)
    for text in (page, stored, caplog.text, json.dumps(sent.errors), sent.message):
        assert inbound_token not in text
