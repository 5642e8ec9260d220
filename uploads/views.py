"""The tenant's pages about what came in and what went out.

The dashboard (the tenant's landing page); the history: uploads, every request (accepted or
refused) and the failures of both; an upload's page (its progress, its errors grouped by
cause, its calls to the vendor, Retry / Skip, Resend / Send now / Cancel) and its errors as
CSV; an integration's overview (setup checklist, health) and its metric values; the
confirmations of Sandbox Mode off and Purge All Data. Thin: the work is in request_log,
reports, processing, purge and the delivery engine.
"""

import re
from urllib.parse import quote

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import CharField, Count, Exists, OuterRef, Q, Subquery, Sum, Value
from django.conf import settings
from django.http import FileResponse, Http404, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from integrations import services
from integrations.models import Integration, IntegrationToken, Metric
from portal.tenancy import tenant_view

from . import processing, reports, request_log
from .delivery import dispatch
from .errors import IntakeError
from .forms import (
    OUTCOMES, UPLOAD_CHANNELS, UPLOAD_STATUSES, HistoryFilter, UploadForm, ValuesFilter, request_channels,
)
from .intake import content_type_for_file, receive
from .models import Dispatch, MetricValue, RequestLog, Upload
from .purge import purge_integration

Status = Upload.Status
# Statuses after which nothing changes by itself; the page stops polling there.
FINAL = {"processed", "failed", "skipped", "purged", "delivered", "not_delivered", "dry_run"}
PAGE_SIZE = 50
PAGE_REPORT_SECONDS = 2.0  # an upload's page completes its error report for this long at most
DOWNLOAD_REPORT_SECONDS = 20.0  # its CSV download, longer
EMBEDDED_REPORT_BYTES = 5 * 1024 * 1024  # a refused file's report, carried in the page (nothing is stored)


def _integration(request, pk):
    return get_object_or_404(Integration.objects.filter(tenant=request.tenant), pk=pk)


def _upload(request, pk):
    return get_object_or_404(Upload.objects.filter(tenant=request.tenant).select_related("integration"), pk=pk)


def _page(request, rows):
    return Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))


# --- The dashboard -----------------------------------------------------------------------------


def with_state(integrations):
    """Integrations annotated with what the dashboard and the setup checklist read: their last
    upload, and whether they have an active issued token, metrics and any upload."""
    last = Upload.objects.filter(integration=OuterRef("pk")).order_by("-created_at", "-id")
    return integrations.annotate(
        last_upload_id=Subquery(last.values("id")[:1]),
        last_upload_at=Subquery(last.values("created_at")[:1]),
        last_upload_status=Subquery(last.values("status")[:1], output_field=CharField()),
        has_token=Exists(IntegrationToken.objects.active().filter(integration=OuterRef("pk"))),
        has_metrics=Exists(Metric.objects.filter(integration=OuterRef("pk"))),
        has_uploads=Exists(Upload.objects.filter(integration=OuterRef("pk"))),
    )


def setup_steps(integration, can_edit=True):
    """The setup checklist of an integration (annotated by with_state): [{label, done, url, hint}]."""
    slug, pk, spec = integration.tenant.slug, integration.pk, integration.protocol_spec

    def tab(name):
        return reverse(name, args=[slug, pk])

    send = f"{reverse('upload_create', args=[slug])}?integration={pk}"
    sandbox_off = tab("integration_sandbox_off" if can_edit else "integration_settings")
    steps = []
    if integration.is_inbound:
        if spec.issued:
            steps.append({"label": f"Generate the {spec.issued.label}", "done": integration.has_token,
                          "url": tab("integration_credentials"),
                          "hint": f"Your system sends it with every request: {spec.issued.how_sent}."})
        if spec.has_metrics:
            steps.append({"label": "Add metrics", "done": integration.has_metrics, "url": tab("integration_metrics"),
                          "hint": "Without metrics a file is received but makes no values."})
        sample = tab("integration_sample") if spec.settings_of(integration).get("field_keys") else ""
        steps.append({"label": "Send a test file", "done": integration.has_uploads, "url": send, "sample": sample,
                      "hint": "Upload the sample file built from your field keys, or POST it with the curl "
                              "command on the Credentials tab. In Sandbox Mode its values stay inside this "
                              "integration."})
        steps.append({"label": "Turn Sandbox Mode off", "done": not integration.sandbox, "url": sandbox_off,
                      "hint": "Then its values count everywhere. Purge the test data first if it should not."})
    else:
        if spec.vault_fields:
            steps.append({"label": "Store the vendor's credentials", "done": integration.has_vendor_credentials,
                          "url": tab("integration_settings"), "hint": "Stored encrypted; never shown again."})
        steps.append({"label": "Dry-run a file", "done": integration.has_uploads, "url": send,
                      "hint": "In Sandbox Mode the portal checks the file and logs the exact request it "
                              "would make; nothing is sent."})
        steps.append({"label": "Turn Sandbox Mode off", "done": not integration.sandbox, "url": sandbox_off,
                      "hint": "Then files are sent to the vendor."})
    return steps


def needs_attention(tenant, integrations):
    """What an admin should look at: uploads held behind a failed one, clients whose requests are
    being refused, vendors that do not take what is sent."""
    items = []
    waiting = dict(Upload.objects.filter(tenant=tenant, status=Status.WAITING).values_list("integration")
                   .annotate(n=Count("id")))
    halting = (Upload.objects.filter(tenant=tenant, status=Status.FAILED, sandbox=False,
                                     integration__direction="inbound", integration__sandbox=False)
               .select_related("integration").order_by("integration__name", "id"))
    for upload in halting:
        held = waiting.get(upload.integration_id, 0)
        items.append({"integration": upload.integration, "url": upload.get_absolute_url(), "link": "Retry or skip it",
                      "text": f"Upload #{upload.pk} failed and Sandbox Mode is off: "
                              + (f"{held:,} later upload{pluralize(held)} wait{'s' if held == 1 else ''} behind it."
                                 if held else "the next upload will wait behind it.")})
    retrying = (Dispatch.objects.filter(tenant=tenant, status=Dispatch.Status.WAITING, failures__gt=0)
                .select_related("upload__integration"))
    for pending in retrying:
        items.append({"integration": pending.upload.integration, "url": pending.upload.get_absolute_url(),
                      "link": f"Upload #{pending.upload_id}",
                      "text": f"{pending.failures} of {pending.max_attempts} attempts to reach the vendor failed; "
                              f"the next one is at {timezone.localtime(pending.next_attempt_at):%H:%M:%S}."
                              if pending.next_attempt_at else "Sending to the vendor failed; it is tried again."})
    failures = reverse("failures", args=[tenant.slug])
    named = {item["integration"].pk for item in items}
    for integration in integrations:
        state, count = integration.health, integration.health["failures"]
        if state["failing"] and count and integration.pk not in named:
            items.append({"integration": integration, "url": f"{failures}?integration={integration.pk}",
                          "link": "See the failures",
                          "text": f"{count:,} failure{pluralize(count)} in the last 7 days, and "
                                  + ("nothing has succeeded yet." if not state["last_success"]
                                     else "nothing has succeeded since.")})
    return items


@tenant_view()
def dashboard(request):
    tenant = request.tenant
    integrations = list(with_state(tenant.integrations.select_related("tenant").order_by("name")))
    health = request_log.health(integrations)
    labels = dict(Status.choices)
    for integration in integrations:
        integration.health = health[integration.pk]
        integration.last_upload_label = labels.get(integration.last_upload_status, "")
        steps = setup_steps(integration)
        integration.steps_done, integration.steps = sum(s["done"] for s in steps), len(steps)
    return render(request, "uploads/dashboard.html", {
        "integrations": integrations, "attention": needs_attention(tenant, integrations),
        "recent": request_log.described(request_log.requests_of(tenant)[:10]),
        "recent_uploads": Upload.objects.filter(tenant=tenant).select_related("integration")[:5],
    })


# --- History: uploads, requests, failures ---------------------------------------------------------


def _uploads(request, uploads, integration=None, **context):
    filters = HistoryFilter(request.GET or None, tenant=request.tenant, statuses=UPLOAD_STATUSES,
                            channels=UPLOAD_CHANNELS)
    uploads = filters.filter(uploads)
    if filters.value("status"):
        uploads = uploads.filter(status=filters.value("status"))
    if filters.value("channel"):
        uploads = uploads.filter(channel=filters.value("channel"))
    page = _page(request, uploads.select_related("integration", "submitted_by"))
    return render(request, "uploads/history.html", {"page": page, "filters": filters, "view": "uploads",
                                                    "integration": integration, **context})


@tenant_view()
def upload_history(request):
    return _uploads(request, Upload.objects.filter(tenant=request.tenant))


@tenant_view()
def integration_uploads(request, pk):
    integration = _integration(request, pk)
    return _uploads(request, integration.uploads.all(), integration=integration, tab="uploads")


def filter_requests(rows, outcome, channel):
    if outcome == "accepted":
        rows = rows.filter(status_code__lt=400)
    elif outcome == "refused":
        rows = rows.filter(status_code__gte=400, status_code__lt=500)
    elif outcome == "error":
        rows = rows.filter(status_code__gte=500)
    rest = Q(path__startswith=request_log.rest_prefix())
    if channel == "web":
        rows = rows.filter(channel=Upload.Channel.WEB)
    elif channel == "rest":
        rows = rows.filter(rest)
    elif channel.startswith("endpoint:"):
        rows = rows.filter(protocol=channel.split(":", 1)[1]).exclude(channel=Upload.Channel.WEB).exclude(rest)
    return rows


@tenant_view()
def request_list(request):
    """Every request that reached a protocol's endpoint or the upload form, accepted or refused."""
    filters = HistoryFilter(request.GET or None, tenant=request.tenant, statuses=OUTCOMES,
                            channels=request_channels())
    rows = filter_requests(filters.filter(request_log.requests_of(request.tenant)), filters.value("status") or "",
                           filters.value("channel") or "")
    page = _page(request, rows)
    page.object_list = request_log.described(page.object_list)
    return render(request, "uploads/requests.html", {"page": page, "filters": filters, "view": "requests"})


@tenant_view()
def failures(request):
    """Refused requests and uploads that failed or were not delivered, newest first, in one list."""
    filters = HistoryFilter(request.GET or None, tenant=request.tenant, statuses=[], channels=[])
    refused = filters.filter(RequestLog.objects.filter(tenant=request.tenant, status_code__gte=400))
    failed = filters.filter(Upload.objects.filter(tenant=request.tenant,
                                                  status__in=[Status.FAILED, Status.NOT_DELIVERED]))
    kind = lambda name: Value(name, output_field=CharField())  # noqa: E731
    merged = (refused.annotate(kind=kind("request")).values_list("kind", "id", "created_at").order_by()
              .union(failed.annotate(kind=kind("upload")).values_list("kind", "id", "created_at").order_by(),
                     all=True)
              .order_by("-created_at", "-id"))
    page = _page(request, merged)
    ids = {"request": [], "upload": []}
    for item_kind, pk, _ in page.object_list:
        ids[item_kind].append(pk)
    found = {("request", r.pk): r for r in RequestLog.objects.filter(pk__in=ids["request"])
             .select_related("integration", "upload")}
    found |= {("upload", u.pk): u for u in Upload.objects.filter(pk__in=ids["upload"]).select_related("integration")}
    request_log.described(r for (k, _), r in found.items() if k == "request")
    rows = [{"kind": item_kind, "item": found[(item_kind, pk)]} for item_kind, pk, _ in page.object_list]
    return render(request, "uploads/failures.html", {"page": page, "rows": rows, "filters": filters,
                                                     "view": "failures"})


@tenant_view()
def request_detail(request, pk):
    row = get_object_or_404(request_log.requests_of(request.tenant), pk=pk)
    return render(request, "uploads/request_detail.html", {"entry": request_log.described([row])[0]})


# --- An upload ----------------------------------------------------------------------------------


@tenant_view()
def upload_detail(request, pk):
    upload = _upload(request, pk)
    report = reports.of_upload(upload, PAGE_REPORT_SECONDS) if upload.errors else None
    dispatches = call_log(upload)
    state = progress(upload, dispatches)
    if report and re.fullmatch(r"\d+ errors?; nothing was written\.", upload.message):
        # Processing counts the errors it keeps (100 at most); the report counted them all.
        state["message"] = f"{report.total:,}{'' if report.complete else '+'} error{pluralize(report.total)}; " \
                           "nothing was written."
    return render(request, "uploads/detail.html", {"upload": upload, "progress": state,
                                                   "halting": _halting(upload), "report": report,
                                                   "dispatches": dispatches})


def _halting(upload):
    """A failed upload that holds the later ones back (out of Sandbox Mode): Retry or Skip it."""
    return upload.integration.is_inbound and upload.status == Status.FAILED and not upload.sandbox


ERROR_WORDS = {  # an exception's class, as the call log shows it
    "RefusedDestination": "Refused", "ConnectionError": "Could not connect", "ConnectTimeout": "Timed out connecting",
    "ReadTimeout": "Timed out waiting for the answer", "Timeout": "Timed out", "SSLError": "TLS error",
    "TooManyRedirects": "Too many redirects", "ChunkedEncodingError": "The answer broke off",
}


def call_log(upload):
    """The upload's dispatches, each with its calls, for the call list (outbound uploads only)."""
    if upload.integration.is_inbound:
        return []
    dispatches = list(upload.dispatches.prefetch_related("calls"))
    for item in dispatches:
        for call in item.calls.all():
            call.error_words = ERROR_WORDS.get(call.error_class, call.error_class)
    return dispatches


def _message(upload, waiting):
    """The upload's message without what the page shows beside it: its status, a frozen countdown."""
    message, label = upload.message, upload.get_status_display()
    if message.lower().startswith(label.lower()):
        rest = message[len(label):].lstrip(" :")
        message = rest[:1].upper() + rest[1:]
    if waiting is not None:
        message = re.sub(r"\s*Retrying in \d+ s\.$", "", message)
    return message


def progress(upload, dispatches=None):
    """What the upload page shows, and what its script polls for."""
    waiting = next((d for d in (dispatches if dispatches is not None else upload.dispatches.all())
                    if d.status == Dispatch.Status.WAITING), None) if not upload.integration.is_inbound else None
    percent = {"queued": 5, "waiting": 5, "processing": 50, "sending": 50}.get(upload.status, 100)
    purged = upload.status == Status.PURGED
    return {
        "id": upload.pk, "status": upload.status, "status_display": upload.get_status_display(),
        "done": upload.status in FINAL, "percent": percent, "records": upload.records,
        "values_written": upload.values_written, "records_display": f"{upload.records:,}",
        "values_written_display": "purged" if purged else f"{upload.values_written:,}", "message": _message(upload, waiting),
        "errors": len(upload.errors), "started_at": upload.started_at, "finished_at": upload.finished_at,
        "seconds": upload.duration_seconds,
        "next_attempt_at": waiting.next_attempt_at.isoformat() if waiting and waiting.next_attempt_at else None,
    }


@tenant_view()
def upload_status(request, pk):
    upload = _upload(request, pk)
    dispatches = call_log(upload)
    state = progress(upload, dispatches)
    if not upload.integration.is_inbound:
        state["calls_html"] = render_to_string("integrations/_calls.html",
                                               {"upload": upload, "dispatches": dispatches}, request)
    return JsonResponse(state)


@tenant_view(edit=True)
def upload_download(request, pk):
    """The upload's stored file, as it arrived: streamed from storage (FileResponse reads it in
    blocks), or from S3 through a short-lived presigned URL."""
    upload = _upload(request, pk)
    if not upload.file:
        raise Http404("This upload's file was purged.")
    name = upload.filename or upload.file.name.rsplit("/", 1)[-1]
    if settings.S3_BUCKET:
        disposition = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
        return HttpResponseRedirect(upload.file.storage.url(upload.file.name, expire=300, parameters={
            "ResponseContentDisposition": disposition}))
    try:
        stored = upload.file.open("rb")
    except FileNotFoundError:
        raise Http404("The stored file is gone.") from None
    return FileResponse(stored, as_attachment=True, filename=name,
                        content_type=upload.content_type or "application/octet-stream")


@tenant_view()
def upload_errors_csv(request, pk):
    """Every error of a failed upload, beside its original row, as CSV."""
    upload = _upload(request, pk)
    made = reports.of_upload(upload, DOWNLOAD_REPORT_SECONDS)
    response = StreamingHttpResponse(made.csv_lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="upload-{upload.pk}-errors.csv"'
    return response


@tenant_view(edit=True)
@require_POST
def upload_retry(request, pk):
    upload = _upload(request, pk)
    if _halting(upload) and processing.retry_upload(upload, request.user):
        messages.success(request, f"Upload #{upload.pk} is queued again.")
    else:
        messages.error(request, "Only a failed upload can be retried.")
    return redirect(upload)


@tenant_view(edit=True)
@require_POST
def upload_skip(request, pk):
    upload = _upload(request, pk)
    if _halting(upload) and processing.skip_upload(upload, request.user):
        messages.success(request, f"Upload #{upload.pk} skipped; the uploads behind it are processed now.")
    else:
        messages.error(request, "Only a failed upload can be skipped.")
    return redirect(upload)


@tenant_view(edit=True)
def upload_create(request):
    """The upload form: the same intake as the API. Inbound, the file is processed; outbound, it is
    checked and sent to the vendor (a dry run in Sandbox Mode). A refused file is answered with its
    errors grouped by cause and, carried in the page, every error as CSV; nothing is stored."""
    form = UploadForm(request.POST or None, request.FILES or None, tenant=request.tenant,
                      initial={"integration": request.GET.get("integration")})
    if request.method == "POST" and form.is_valid():
        integration, file = form.cleaned_data["integration"], form.cleaned_data["file"]
        content_type = content_type_for_file(integration, file.name)
        logged = {"channel": Upload.Channel.WEB, "size": file.size}
        try:
            upload = receive(
                integration, file, content_type=content_type, channel=Upload.Channel.WEB,
                submitted_by=request.user, submitted_via=request.user.get_username(), filename=file.name,
            )
        except IntakeError as problem:
            file.seek(0)
            body = file.read()
            made = reports.of_file(integration, body, content_type, problem)
            request_log.note(request, integration, status_code=problem.status, errors=made.errors, total=made.total,
                             message=made.line(), excerpt=body[:request_log.EXCERPT_BYTES], **logged)
            report_csv = "".join(made.csv_lines())
            return render(request, "uploads/form.html", {
                "form": form, "report": made, "filename": file.name,
                "report_name": f"{slugify(file.name.rsplit('.', 1)[0]) or 'upload'}-errors.csv",
                "report_csv": report_csv if len(report_csv) <= EMBEDDED_REPORT_BYTES else "",
            }, status=problem.status)
        except ValidationError as exc:  # an outbound integration that cannot send now
            request_log.note(request, integration, status_code=400, message=" ".join(exc.messages), **logged)
            form.add_error(None, exc)
            return render(request, "uploads/form.html", {"form": form}, status=400)
        request_log.note(request, integration, status_code=201, **logged)
        if upload.status == Status.DRY_RUN:
            messages.success(request, "Sandbox Mode: the file was checked and the request it would make is logged "
                                      "below. Nothing was sent.")
        elif not integration.is_inbound:
            messages.success(request, f"The file is being sent to {integration.name}.")
        else:
            messages.success(request, f"{upload.records:,} record{pluralize(upload.records)} received and queued; "
                                      "this page follows their processing.")
        return redirect(upload)
    return render(request, "uploads/form.html", {"form": form})


def _outbound_action(request, pk, act, done):
    upload = _upload(request, pk)
    try:
        act(upload, request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, done)
    return redirect(upload)


@tenant_view(edit=True)
@require_POST
def upload_resend(request, pk):
    upload = _upload(request, pk)
    try:
        upload = dispatch.resend(upload, request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Dry run logged again (Sandbox Mode)." if upload.status == Status.DRY_RUN
                         else "Resending: a new series of attempts is queued.")
    return redirect(upload)


@tenant_view(edit=True)
@require_POST
def upload_send_now(request, pk):
    return _outbound_action(request, pk, dispatch.send_now, "The next attempt is being made now.")


@tenant_view(edit=True)
@require_POST
def upload_cancel(request, pk):
    return _outbound_action(request, pk, dispatch.cancel, "Sending cancelled: no further attempt is made.")


# --- An integration: overview, values, Sandbox Mode off, purge ---------------------------------------


def _annotated(request, pk):
    return get_object_or_404(with_state(Integration.objects.filter(tenant=request.tenant).select_related("tenant")),
                             pk=pk)


@tenant_view()
def integration_overview(request, pk):
    """Where a new integration lands: what is left to set it up, and how it is doing."""
    integration = _annotated(request, pk)
    steps = setup_steps(integration, request.membership.can_edit)
    return render(request, "uploads/overview.html", {
        "integration": integration, "tab": "overview", "steps": steps,
        "steps_left": sum(not s["done"] for s in steps), "health": request_log.health([integration])[integration.pk],
        "recent": request_log.described(request_log.requests_of(request.tenant).filter(integration=integration)[:10]),
        "recent_uploads": integration.uploads.all()[:5],
    })


CHART_DAYS = 60
CHART_SLOTS = 14  # bars never get wider than a fourteenth of the chart; few days sit on the right
CHART_WIDTH, CHART_HEIGHT = 300, 64


def charts(integration):
    """One small bar chart per metric: its daily total over the last CHART_DAYS days that have values."""
    totals = (MetricValue.objects.filter(integration=integration).values("metric_id", "date")
              .annotate(total=Sum("value")).order_by("metric_id", "-date"))
    days = {}
    for row in totals:
        series = days.setdefault(row["metric_id"], [])
        if len(series) < CHART_DAYS:
            series.append((row["date"], row["total"]))
    found = []
    for metric in integration.metrics.all():
        series = sorted(days.get(metric.pk, []))
        found.append({"metric": metric, "bars": _bars(series), "first": series[0][0] if series else None,
                      "last": series[-1][0] if series else None,
                      "peak": max((t for _, t in series), default=0), "days": len(series),
                      "sum": sum(t for _, t in series)})
    return found


def _bars(series):
    if not series:
        return []
    peak = max(max(t for _, t in series), 0) or 1
    slots = max(len(series), CHART_SLOTS)
    step = CHART_WIDTH / slots
    bars = []
    for n, (day, total) in enumerate(series, start=slots - len(series)):
        height = max(1.0, CHART_HEIGHT * max(total, 0) / peak)
        bars.append({"x": round(n * step + step * 0.1, 2), "width": round(step * 0.8, 2),
                     "y": round(CHART_HEIGHT - height, 2), "height": round(height, 2), "day": day, "total": total})
    return bars


@tenant_view()
def integration_values(request, pk):
    """The integration's metric values: a chart per metric, and every value, filtered."""
    integration = _integration(request, pk)
    filters = ValuesFilter(request.GET or None, integration=integration)
    values = filters.filter(integration.metric_values.select_related("account", "metric")
                            .order_by("-date", "metric__name", "account__email"))
    return render(request, "uploads/values.html", {
        "integration": integration, "tab": "values", "charts": charts(integration), "filters": filters,
        "page": _page(request, values), "chart_width": CHART_WIDTH, "chart_height": CHART_HEIGHT,
    })


def sandbox_counts(integration):
    """What starts counting when Sandbox Mode goes off: the unpurged uploads received in it, their
    records, and the values processing made of them."""
    received = integration.uploads.filter(sandbox=True).exclude(status=Status.PURGED)
    totals = received.aggregate(uploads=Count("id"), records_in=Sum("records"))
    return {"uploads": totals["uploads"], "records": totals["records_in"] or 0,
            "values": integration.protocol_spec.processed_count(integration),
            "pending": integration.uploads.filter(status__in=[Status.QUEUED, Status.WAITING,
                                                              Status.PROCESSING]).count()}


@tenant_view(edit=True)
def integration_sandbox_off(request, pk):
    """Sandbox Mode off, behind a confirmation that says what starts counting."""
    integration = _integration(request, pk)
    if not integration.sandbox:
        messages.info(request, "Sandbox Mode is already off.")
        return redirect(integration)
    if request.method == "POST":
        services.set_sandbox(integration, request.user, False)
        messages.success(request, "Sandbox Mode is off." + (
            " Its values count now." if integration.is_inbound else " Files are sent to the vendor from now on."))
        return redirect(integration)
    return render(request, "uploads/confirm_sandbox_off.html", {
        "integration": integration, "counts": sandbox_counts(integration), "protocol": integration.protocol_spec})


@tenant_view(edit=True)
def integration_purge(request, pk):
    """Purge All Data: a confirmation page, then the purge (Sandbox Mode only)."""
    integration = _integration(request, pk)
    if not integration.sandbox:
        messages.error(request, "Purge All Data is only available in Sandbox Mode.")
        return redirect(integration)
    if request.method == "POST":
        try:
            counts = purge_integration(integration, request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            singular, plural = integration.protocol_spec.processed_noun
            messages.success(
                request, f"Purged {counts['values']:,} {singular if counts['values'] == 1 else plural} and "
                f"{counts['files']:,} file{pluralize(counts['files'])} from {counts['uploads']:,} "
                f"upload{pluralize(counts['uploads'])}.",
            )
        return redirect(integration)
    kept = integration.uploads.exclude(status=Status.PURGED)
    stats = kept.aggregate(uploads=Count("id"), files=Count("id", filter=~Q(file="")), records_in=Sum("records"),
                           production_uploads=Count("id", filter=Q(sandbox=False)),
                           production_records=Sum("records", filter=Q(sandbox=False)),
                           pending=Count("id", filter=Q(status__in=[Status.QUEUED, Status.PROCESSING,
                                                                    Status.WAITING, Status.SENDING])))
    stats["values"] = integration.protocol_spec.processed_count(integration)
    return render(request, "integrations/confirm_purge.html", {"integration": integration, "stats": stats,
                                                                "protocol": integration.protocol_spec})

