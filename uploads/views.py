"""Upload form and history pages, the progress of one upload, its errors as CSV, Retry and Skip."""

import csv

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.views.decorators.http import require_POST

from integrations.models import Integration
from portal.tenancy import tenant_view

from . import processing
from .errors import IntakeError
from .forms import UploadForm
from .delivery import dispatch
from .intake import content_type_for_file, receive
from .models import Upload
from .purge import purge_integration

# Statuses after which nothing changes by itself; the page stops polling there.
FINAL = {"processed", "failed", "skipped", "purged", "delivered", "not_delivered", "dry_run"}


def _history(request, uploads, **context):
    page = Paginator(uploads.select_related("integration", "submitted_by"), 50).get_page(request.GET.get("page"))
    return render(request, "uploads/history.html", {"page": page, **context})


@tenant_view()
def upload_history(request):
    return _history(request, Upload.objects.filter(tenant=request.tenant))


@tenant_view()
def integration_uploads(request, pk):
    integration = get_object_or_404(Integration.objects.filter(tenant=request.tenant), pk=pk)
    return _history(request, integration.uploads.all(), integration=integration, tab="uploads")


def _upload(request, pk):
    return get_object_or_404(Upload.objects.filter(tenant=request.tenant).select_related("integration"), pk=pk)


@tenant_view()
def upload_detail(request, pk):
    upload = _upload(request, pk)
    return render(request, "uploads/detail.html", {"upload": upload, "progress": progress(upload),
                                                   "halting": _halting(upload)})


def _halting(upload):
    """A failed upload that holds the later ones back (out of Sandbox Mode): Retry or Skip it."""
    return upload.integration.is_inbound and upload.status == Upload.Status.FAILED and not upload.sandbox


def progress(upload):
    """What the upload page shows, and what its script polls for."""
    percent = {"queued": 5, "waiting": 5, "processing": 50, "sending": 50}.get(upload.status, 100)
    return {
        "id": upload.pk, "status": upload.status, "status_display": upload.get_status_display(),
        "done": upload.status in FINAL, "percent": percent, "records": upload.records,
        "values_written": upload.values_written, "message": upload.message, "errors": len(upload.errors),
        "started_at": upload.started_at, "finished_at": upload.finished_at, "seconds": upload.duration_seconds,
    }


@tenant_view()
def upload_status(request, pk):
    return JsonResponse(progress(_upload(request, pk)))


@tenant_view()
def upload_errors_csv(request, pk):
    upload = _upload(request, pk)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="upload-{upload.pk}-errors.csv"'
    writer = csv.writer(response)
    writer.writerow(["row", "column", "id", "description"])
    for e in upload.errors:
        writer.writerow([_cell(e.get("row")), _cell(e.get("column")), _cell(e.get("id")), _cell(e.get("description"))])
    return response


def _cell(value):
    """No formulas for spreadsheet programs in a file that quotes users' data."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


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
    checked and sent to the vendor (a dry run in Sandbox Mode)."""
    form = UploadForm(request.POST or None, request.FILES or None, tenant=request.tenant,
                      initial={"integration": request.GET.get("integration")})
    if request.method == "POST" and form.is_valid():
        integration, file = form.cleaned_data["integration"], form.cleaned_data["file"]
        try:
            upload = receive(
                integration, file, content_type=content_type_for_file(integration, file.name), channel=Upload.Channel.WEB,
                submitted_by=request.user, submitted_via=request.user.get_username(), filename=file.name,
            )
        except IntakeError as problem:
            return render(request, "uploads/form.html", {"form": form, "errors": problem.errors,
                                                         "total_errors": problem.total}, status=problem.status)
        except ValidationError as exc:  # an outbound integration that cannot send now
            form.add_error(None, exc)
            return render(request, "uploads/form.html", {"form": form}, status=400)
        if upload.status == Upload.Status.DRY_RUN:
            messages.success(request, "Sandbox Mode: the file was checked and the request it would make is logged "
                                      "below. Nothing was sent.")
        elif not integration.is_inbound:
            messages.success(request, f"The file is being sent to {integration.name}.")
        else:
            messages.success(request, f"{upload.records:,} records received; they are queued for processing.")
        return redirect(upload)
    return render(request, "uploads/form.html", {"form": form})


@tenant_view(edit=True)
@require_POST
def upload_resend(request, pk):
    upload = _upload(request, pk)
    try:
        upload = dispatch.resend(upload, request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Dry run logged again (Sandbox Mode)." if upload.status == Upload.Status.DRY_RUN
                         else "Resending: a new series of attempts has started.")
    return redirect(upload)


@tenant_view(edit=True)
def integration_purge(request, pk):
    """Purge All Data: a confirmation page, then the purge (Sandbox Mode only)."""
    integration = get_object_or_404(Integration.objects.filter(tenant=request.tenant), pk=pk)
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
    stats = {"values": integration.protocol_spec.processed_count(integration),
             "uploads": integration.uploads.exclude(status=Upload.Status.PURGED).count(),
             "production_uploads": integration.uploads.exclude(status=Upload.Status.PURGED)
             .filter(sandbox=False).count()}
    return render(request, "integrations/confirm_purge.html", {"integration": integration, "stats": stats,
                                                                "protocol": integration.protocol_spec})
