from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from integrations import registry

from . import views

tenant_patterns = [
    path("activity/", views.activity, name="activity"),
    path("", include("integrations.urls")),
    path("", include("uploads.urls")),
    *registry.page_urlpatterns(),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("t/<slug:slug>/", include(tenant_patterns)),
    path("api/", include("portal.api_urls")),
]

handler404 = "portal.views.not_found"
