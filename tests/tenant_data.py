"""A tenant with data of every kind, marked so that any of it showing up elsewhere can be found:
every name, email, data type and source it has holds MARK. Used by the isolation, fuzzing and
secrets tests (another tenant must never see any of it)."""

import json
import re
from dataclasses import dataclass, field

from django.apps import apps
from django.db import transaction
from django.urls import get_resolver

from integrations import services
from integrations.models import ApiToken, Integration
from uploads.intake import receive
from uploads.models import Upload
from uploads.processing import process_upload

MARK = "alphamark"
VENDOR_SECRET = "vendor-Secret-alphamark-7f3c9a1be24d"


@dataclass
class TenantData:
    tenant: object
    owner: object
    integrations: dict = field(default_factory=dict)  # name → Integration
    uploads: list = field(default_factory=list)
    secrets: list = field(default_factory=list)  # every credential issued or kept for this tenant
    api_token: str = ""


def records(count, day=16):
    return json.dumps([{"email": f"user{i}@{MARK}.example", "date": f"8/{day}/2016", "calls": i}
                       for i in range(count)]).encode()


def make_tenant_data(tenant, owner, vendor_url="https://vendor.example/api/v1/data/calls/"):
    """Inbound and outbound integrations of each protocol, tokens, processed and failed uploads,
    metric values, feedback entries and audit events, all of `tenant`. Tasks run eagerly here."""
    data = TenantData(tenant=tenant, owner=owner)
    calls = services.create_integration(
        tenant, owner, name=f"Calls {MARK}", data_type=f"calls-{MARK}", data_format="json",
        field_keys=["email", "date", "calls"], user_key="email", date_key="date", date_format="M/D/YYYY",
        metrics=[{"name": f"calls-{MARK}", "source_key": "calls", "aggregation": "sum"}])
    services.set_sandbox(calls, owner, False)
    source = services.create_integration(tenant, owner, name=f"Feedback {MARK}", protocol="source_import",
                                         source_id=f"src-{MARK}")
    outbound = services.create_integration(
        tenant, owner, name=f"Vendor {MARK}", direction="outbound", data_type=f"calls-{MARK}",
        data_format="json", field_keys=["email", "date", "calls"], endpoint_url=vendor_url,
        credentials={"auth_token": VENDOR_SECRET})
    data.integrations = {"calls": calls, "source": source, "outbound": outbound}
    data.secrets.append(VENDOR_SECRET)
    data.secrets.append(services.regenerate_integration_token(calls, owner))
    data.secrets.append(services.regenerate_integration_token(source, owner))
    _, data.api_token = services.issue_api_token(tenant, owner, f"token {MARK}", ApiToken.Scope.READ_WRITE)
    data.secrets.append(data.api_token)

    for body in (records(3), records(2, day=17)):
        upload = receive(calls, body, content_type="application/json", channel="api")
        process_upload(upload.pk)
        data.uploads.append(upload)
    entry = {"date": "2024-03-08 00:29:00", "name": f"User {MARK}", "content": f"Feedback {MARK}"}
    upload = receive(source, json.dumps({"source_id": f"src-{MARK}", "payload": [entry]}).encode(),
                     content_type="application/json", channel="import")
    process_upload(upload.pk)
    data.uploads.append(upload)
    data.uploads.append(receive(outbound, records(1), content_type="application/json", channel="api"))  # a dry run
    # A failed upload (its file gone before it was processed), so that errors exist too.
    with transaction.atomic():
        failing = receive(calls, records(1, day=18), content_type="application/json", channel="api")
        failing.file.storage.delete(failing.file.name)
    process_upload(failing.pk)
    data.uploads.append(failing)
    assert Upload.objects.filter(pk=failing.pk, status="failed").exists()
    assert Integration.objects.filter(tenant=tenant).count() == 3
    return data


def url_patterns():
    """(name, format string, parameter names) of every named URL outside the admin."""
    found = []
    for name, possibilities in get_resolver().reverse_dict.lists():
        if not isinstance(name, str):
            continue
        for possibility in possibilities:
            for template, params in possibility[0]:
                found.append((name, template, tuple(params)))
    return sorted(set(found))


def tenant_rows(tenant):
    """Model → ids of the tenant's rows, for every model with a tenant (or an integration)."""
    rows = {}
    for model in apps.get_models():
        relations = {f.name for f in model._meta.get_fields() if f.is_relation and f.many_to_one}
        if "tenant" in relations:
            ids = set(model.objects.filter(tenant=tenant).values_list("pk", flat=True))
        elif "integration" in relations:
            ids = set(model.objects.filter(integration__tenant=tenant).values_list("pk", flat=True))
        else:
            continue
        if ids:
            rows[model] = ids
    return rows


def model_for(template, param, candidates):
    """The model a URL's id parameter names, among the tenant's (candidates), from the path
    segment before it ("uploads/%(pk)s", "tokens/%(token_pk)s")."""
    match = re.search(r"([a-z_-]+)/%\(" + re.escape(param) + r"\)s", template)
    segment = match.group(1).replace("-", " ").replace("_", " ") if match else ""
    singular = segment[:-1].replace(" ", "") if segment.endswith("s") else segment.replace(" ", "")
    for model in candidates:
        names = {str(model._meta.verbose_name_plural), model._meta.model_name + "s", model._meta.db_table}
        if segment and (segment in names or any(n.endswith(" " + segment) for n in names)
                        or model._meta.model_name.startswith(singular)):
            return model
    return None
