from django.urls import path

from . import views

urlpatterns = [
    path("integrations/", views.integration_list, name="integration_list"),
    path("integrations/new/", views.integration_create, name="integration_create"),
    path("integrations/<int:pk>/", views.integration_settings, name="integration_settings"),
    path("integrations/<int:pk>/data-format/", views.integration_protocol_settings,
         name="integration_protocol_settings"),
    path("integrations/<int:pk>/metrics/", views.integration_metrics, name="integration_metrics"),
    path("integrations/<int:pk>/metrics/<int:metric_pk>/delete/", views.metric_delete, name="metric_delete"),
    path("integrations/<int:pk>/credentials/", views.integration_credentials, name="integration_credentials"),
    path("integrations/<int:pk>/sample/", views.integration_sample, name="integration_sample"),
    path("integrations/<int:pk>/credentials/regenerate/", views.integration_token_regenerate,
         name="integration_token_regenerate"),
    path("integrations/<int:pk>/delete/", views.integration_delete, name="integration_delete"),
    path("tokens/", views.token_list, name="token_list"),
    path("tokens/new/", views.token_create, name="token_create"),
    path("tokens/<int:token_pk>/revoke/", views.token_revoke, name="token_revoke"),
]
