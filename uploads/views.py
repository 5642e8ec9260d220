"""Upload form and history pages."""

from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render

from integrations.models import Integration
from portal.tenancy import tenant_view

from .forms import UploadForm
from .models import Upload


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


@tenant_view()
def upload_detail(request, pk):
    upload = get_object_or_404(Upload.objects.filter(tenant=request.tenant).select_related("integration"), pk=pk)
    return render(request, "uploads/detail.html", {"upload": upload})


@tenant_view(edit=True)
def upload_create(request):
    form = UploadForm(request.POST or None, request.FILES or None, tenant=request.tenant,
                      initial={"integration": request.GET.get("integration")})
    return render(request, "uploads/form.html", {"form": form})
