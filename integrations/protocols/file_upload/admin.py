from django.contrib import admin

from .models import FileSlot, Notification, TokenLink


@admin.register(FileSlot)
class FileSlotAdmin(admin.ModelAdmin):
    """Files asked for and received through the File Upload API, for support: read only."""

    list_display = ["id", "created_at", "tenant", "filename", "status", "sent_by", "expires_at", "upload"]
    list_filter = ["status", "tenant"]
    search_fields = ["filename", "sent_by"]
    list_select_related = ["tenant", "upload"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "tenant", "message", "emailed_to"]
    list_filter = ["tenant"]
    list_select_related = ["tenant"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TokenLink)
class TokenLinkAdmin(admin.ModelAdmin):
    list_display = ["token", "integration"]
    list_select_related = ["token", "integration"]
    raw_id_fields = ["token", "integration"]
