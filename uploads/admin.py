from django import forms
from django.contrib import admin
from django.db.models import Count

from .models import Account, CallLog, Group, MetricValue, RequestLog, Upload


class AccountAdminForm(forms.ModelForm):
    class Meta:
        model = Account
        fields = "__all__"

    def clean(self):
        data = super().clean()
        tenant = data.get("tenant")
        foreign = [g.name for g in data.get("groups") or [] if tenant and g.tenant_id != tenant.pk]
        if foreign:
            raise forms.ValidationError({"groups": f"Not groups of {tenant}: {', '.join(foreign)}."})
        return data


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    """Reference 001's accounts: the username is the EntityID of their scores (blank: made from the email)."""

    form = AccountAdminForm
    list_display = ["email", "username", "tenant", "manager", "created_at"]
    list_filter = ["tenant"]
    search_fields = ["email", "username"]
    filter_horizontal = ["groups"]
    raw_id_fields = ["manager"]
    list_select_related = ["tenant", "manager"]


class GroupAdminForm(forms.ModelForm):
    class Meta:
        model = Group
        fields = "__all__"

    def clean(self):
        data = super().clean()
        tenant = data.get("tenant")
        foreign = [a.email for a in data.get("managers") or [] if tenant and a.tenant_id != tenant.pk]
        if foreign:
            raise forms.ValidationError({"managers": f"Not accounts of {tenant}: {', '.join(foreign)}."})
        return data


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    """Reference 001's groups: their id is the Group ID of their scores; members are set on accounts."""

    form = GroupAdminForm
    list_display = ["name", "id", "tenant", "member_count"]
    list_filter = ["tenant"]
    search_fields = ["name"]
    filter_horizontal = ["managers"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(members=Count("accounts", distinct=True))

    @admin.display(description="Members", ordering="members")
    def member_count(self, group):
        return group.members


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


@admin.register(RequestLog)
class RequestLogAdmin(admin.ModelAdmin):
    """Every request to a protocol's endpoint, for support: read-only, as the middleware wrote it.

    Rows without a tenant count requests that carried no valid credential (`count` of them)."""

    list_display = ["created_at", "tenant", "integration", "method", "path", "status_code", "error_ids", "count",
                    "client_address", "size_bytes"]
    list_filter = ["status_code", "protocol", "channel", "tenant"]
    search_fields = ["path", "message", "client_address", "integration__name"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant", "integration"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
