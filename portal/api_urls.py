"""Every machine-facing endpoint, by protocol and version."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    # Seed 001: OpenAPI 3 schema and Swagger UI.
    path("v3/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("v3/schema/swagger-ui/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("", include("integrations.api_urls")),
]
