from django.contrib import admin

from .models import Account, Group, MetricValue, Upload


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["email", "username", "tenant", "manager", "created_at"]
    list_filter = ["tenant"]
    search_fields = ["email", "username"]
    filter_horizontal = ["groups"]
    raw_id_fields = ["manager"]


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant"]
    list_filter = ["tenant"]
    search_fields = ["name"]


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "tenant", "integration", "channel", "status", "records", "values_written",
                    "size_bytes", "sandbox"]
    list_filter = ["status", "channel", "sandbox", "tenant"]
    search_fields = ["integration__name", "filename", "submitted_via", "sha256"]
    date_hierarchy = "created_at"
    readonly_fields = ["created_at", "queued_at", "started_at", "finished_at", "sha256", "size_bytes"]
    raw_id_fields = ["integration", "submitted_by"]


@admin.register(MetricValue)
class MetricValueAdmin(admin.ModelAdmin):
    list_display = ["date", "account", "metric", "value", "integration", "tenant"]
    list_filter = ["integration__sandbox", "tenant"]
    search_fields = ["account__email", "metric__name"]
    date_hierarchy = "date"
    raw_id_fields = ["account", "metric", "upload", "integration"]
