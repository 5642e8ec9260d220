"""Upload form and history pages, the progress of one upload, its errors as CSV, Retry and Skip."""

import csv

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from integrations.models import Integration
from portal.tenancy import tenant_view

from . import processing
from .errors import IntakeError
from .forms import UploadForm
from .intake import accept_upload, content_type_for_file
from .models import Upload

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
    form = UploadForm(request.POST or None, request.FILES or None, tenant=request.tenant,
                      initial={"integration": request.GET.get("integration")})
    if request.method == "POST" and form.is_valid() and not form.cleaned_data["integration"].is_inbound:
        from integrations.views import send_from_upload_form  # outbound: the file goes to the vendor

        return send_from_upload_form(request, form)
    if request.method == "POST" and form.is_valid():
        integration, file = form.cleaned_data["integration"], form.cleaned_data["file"]
        try:
            upload = accept_upload(
                integration, file, content_type=content_type_for_file(integration, file.name), channel=Upload.Channel.WEB,
                submitted_by=request.user, submitted_via=request.user.get_username(), filename=file.name,
            )
        except IntakeError as problem:
            return render(request, "uploads/form.html", {"form": form, "errors": problem.errors,
                                                         "total_errors": problem.total}, status=problem.status)
        messages.success(request, f"{upload.records} records received; processing has started.")
        return redirect(upload)
    return render(request, "uploads/form.html", {"form": form})
