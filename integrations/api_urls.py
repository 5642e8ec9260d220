"""Machine endpoints of the integrations app: the protocols' inbound sides and /api/v3/."""

from django.urls import path

from .protocols import data_integration

urlpatterns = [
    # Seed 000. The trailing slash is part of the protocol; without it the view says so.
    path("v1/data/<slug:data_type>/", data_integration.DataUploadView.as_view(), name="data_upload"),
    path("v1/data/<slug:data_type>", data_integration.missing_trailing_slash, name="data_upload_no_slash"),
]
