from django.contrib import admin

from .models import Dataset, EventRecord, Submission, TimeRecord, UploadApiClient


class ReadOnlyAdmin(admin.ModelAdmin):
    """For support: read only. Records come from submissions, and go with Purge All Data (audited)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UploadApiClient)
class UploadApiClientAdmin(ReadOnlyAdmin):
    """Which OAuth application acts for which integration (its secret is a hash, in DOT's admin)."""

    list_display = ["client_id", "integration", "secret_issued_at", "created_at"]
    list_select_related = ["application", "integration"]
    search_fields = ["application__client_id", "integration__name"]


@admin.register(Dataset)
class DatasetAdmin(ReadOnlyAdmin):
    list_display = ["name", "integration", "tenant", "live", "updated_at"]
    list_filter = ["tenant"]
    list_select_related = ["integration", "tenant", "live"]
    search_fields = ["name"]


@admin.register(Submission)
class SubmissionAdmin(ReadOnlyAdmin):
    list_display = ["token", "name", "integration", "tenant", "upload", "overwrite", "replaced_by", "created_at"]
    list_filter = ["tenant", "overwrite"]
    list_select_related = ["integration", "tenant", "upload", "replaced_by"]
    search_fields = ["token", "name", "client_id"]


class RecordAdmin(ReadOnlyAdmin):
    list_display = ["id", "reference", "account", "start", "end", "row", "submission", "integration", "tenant"]
    list_filter = ["tenant"]
    list_select_related = ["account", "submission", "integration", "tenant"]
    search_fields = ["reference", "submission__name", "submission__token"]
    date_hierarchy = "start"


@admin.register(TimeRecord)
class TimeRecordAdmin(RecordAdmin):
    pass


@admin.register(EventRecord)
class EventRecordAdmin(RecordAdmin):
    list_display = RecordAdmin.list_display[:5] + ["description", "time_reference"] + RecordAdmin.list_display[5:]
