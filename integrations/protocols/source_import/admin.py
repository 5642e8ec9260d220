from django.contrib import admin

from .models import FeedbackEntry


@admin.register(FeedbackEntry)
class FeedbackEntryAdmin(admin.ModelAdmin):
    """What REST sources received, for support: read only. Entries go with Purge All Data,
    which the audit trail records, not one by one here."""

    list_display = ["date", "name", "source_id", "integration", "tenant", "created_at"]
    list_filter = ["tenant", "integration"]
    search_fields = ["name", "content"]
    date_hierarchy = "date"
    list_select_related = ["tenant", "integration"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
