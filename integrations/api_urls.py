"""Machine endpoints of the integrations app: the protocols' inbound sides and /api/v3/."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from uploads.api import MetricValueList, UploadViewSet

from .api import IntegrationViewSet
from .protocols import data_integration

urlpatterns = [
    # Seed 000. The trailing slash is part of the protocol; without it the view says so.
    path("v1/data/<slug:data_type>/", data_integration.DataUploadView.as_view(), name="data_upload"),
    path("v1/data/<slug:data_type>", data_integration.missing_trailing_slash, name="data_upload_no_slash"),
]

# Public API v3 (seed 001): the automation API and the read-back of uploads and values.
api_v3 = SimpleRouter()
api_v3.register("integrations", IntegrationViewSet, basename="api-integration")
api_v3.register("uploads", UploadViewSet, basename="api-upload")
urlpatterns += [
    path("v3/", include(api_v3.urls)),
    path("v3/metric-values/", MetricValueList.as_view(), name="api-metric-values"),
]
