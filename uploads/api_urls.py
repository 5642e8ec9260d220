"""The REST API under /api/v3/: integrations, uploads, metric values."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from .api import IntegrationViewSet, MetricValueList, UploadViewSet

router = SimpleRouter()
router.register("integrations", IntegrationViewSet, basename="api-integration")
router.register("uploads", UploadViewSet, basename="api-upload")
urlpatterns = [
    *router.urls,
    path("metric-values/", MetricValueList.as_view(), name="api-metric-values"),
]
