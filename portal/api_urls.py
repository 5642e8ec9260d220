"""Every machine-facing endpoint: each protocol's routes (from the registry) and /api/v3/."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from integrations import registry

urlpatterns = [
    # Seed 001: OpenAPI 3 schema and Swagger UI.
    path("v3/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("v3/schema/swagger-ui/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("v3/", include("uploads.api_urls")),
    path("v3/", include(registry.api_urlpatterns())),
    *registry.urlpatterns(),
]
