from django.urls import path

from . import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("uploads/", views.upload_history, name="upload_history"),
    path("uploads/new/", views.upload_create, name="upload_create"),
    path("uploads/<int:pk>/", views.upload_detail, name="upload_detail"),
    path("uploads/<int:pk>/status/", views.upload_status, name="upload_status"),
    path("uploads/<int:pk>/errors.csv", views.upload_errors_csv, name="upload_errors_csv"),
    path("uploads/<int:pk>/download/", views.upload_download, name="upload_download"),
    path("uploads/<int:pk>/retry/", views.upload_retry, name="upload_retry"),
    path("uploads/<int:pk>/skip/", views.upload_skip, name="upload_skip"),
    path("uploads/<int:pk>/resend/", views.upload_resend, name="upload_resend"),
    path("uploads/<int:pk>/send-now/", views.upload_send_now, name="upload_send_now"),
    path("uploads/<int:pk>/cancel/", views.upload_cancel, name="upload_cancel"),
    path("requests/", views.request_list, name="request_list"),
    path("requests/<int:pk>/", views.request_detail, name="request_detail"),
    path("failures/", views.failures, name="failures"),
    path("integrations/<int:pk>/overview/", views.integration_overview, name="integration_overview"),
    path("integrations/<int:pk>/values/", views.integration_values, name="integration_values"),
    path("integrations/<int:pk>/uploads/", views.integration_uploads, name="integration_uploads"),
    path("integrations/<int:pk>/sandbox-off/", views.integration_sandbox_off, name="integration_sandbox_off"),
    path("integrations/<int:pk>/purge/", views.integration_purge, name="integration_purge"),
]
