from django.contrib import admin

from .models import Account, CallLog, Group, MetricValue, Upload


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
    raw_id_fields = ["integration", "submitted_by"]

    # Support reads history (and retries or skips on the portal's pages); it never forges it.
    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(MetricValue)
class MetricValueAdmin(admin.ModelAdmin):
    list_display = ["date", "account", "metric", "value", "integration", "tenant"]
    list_filter = ["integration__sandbox", "tenant"]
    search_fields = ["account__email", "metric__name"]
    date_hierarchy = "date"
    raw_id_fields = ["account", "metric", "upload", "integration"]


@admin.register(CallLog)
class CallLogAdmin(admin.ModelAdmin):
    """The outbound call history, for support: read-only, secrets already redacted when written."""

    list_display = ["created_at", "tenant", "upload", "attempt", "method", "url", "status_code", "error_class",
                    "duration_ms", "dry_run"]
    list_filter = ["dry_run", "status_code", "error_class", "tenant"]
    search_fields = ["url", "error_message", "upload__id"]
    list_select_related = ["tenant", "upload"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
