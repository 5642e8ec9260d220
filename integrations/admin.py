from django.contrib import admin
from django.db import models

from .models import ApiToken, Integration, IntegrationToken, Metric


class MetricInline(admin.TabularInline):
    model = Metric
    extra = 0


class ReadOnlyTokenInline(admin.TabularInline):
    """Tokens are listed by prefix; their hashes are never shown."""

    model = IntegrationToken
    extra = 0
    fields = ["kind", "prefix", "created_at", "last_used_at", "revoked_at", "created_by"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "direction", "protocol", "key", "sandbox", "enabled", "has_vendor_credentials"]
    list_filter = ["direction", "protocol", "sandbox", "enabled", "tenant"]
    search_fields = ["name", "key", "tenant__name", "endpoint_url"]
    # vendor_credentials is not editable, so it never appears on the form.
    readonly_fields = ["created_at", "updated_at", "has_vendor_credentials"]
    inlines = [MetricInline, ReadOnlyTokenInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.display(boolean=True, description="Vendor credentials set")
    def has_vendor_credentials(self, obj):
        return obj.has_vendor_credentials


class TokenAdmin(admin.ModelAdmin):
    """Support can see and revoke tokens but never read one or its hash."""

    readonly_fields = ["prefix", "created_at", "last_used_at"]
    exclude = ["token_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # tokens are issued in the portal, where they are shown once

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        for token in queryset.active():
            token.revoke()


@admin.register(ApiToken)
class ApiTokenAdmin(TokenAdmin):
    list_display = ["name", "tenant", "kind", "scope", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["kind", "scope", "tenant"]
    search_fields = ["name", "prefix", "tenant__name"]


@admin.register(IntegrationToken)
class IntegrationTokenAdmin(TokenAdmin):
    list_display = ["prefix", "kind", "integration", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["kind", "integration__tenant"]
    search_fields = ["prefix", "integration__name"]
