from django.urls import path

from . import views

urlpatterns = [
    path("uploads/", views.upload_history, name="upload_history"),
    path("uploads/new/", views.upload_create, name="upload_create"),
    path("uploads/<int:pk>/", views.upload_detail, name="upload_detail"),
    path("integrations/<int:pk>/uploads/", views.integration_uploads, name="integration_uploads"),
]
