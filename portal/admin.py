from django.contrib import admin

from .models import AuditEvent, Membership, Tenant


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "user__email", "tenant__name"]
    autocomplete_fields = ["user", "tenant"]


class ActionFilter(admin.SimpleListFilter):
    """Every action by its label, the protocols' own included (the field's choices are the core's)."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        return AuditEvent.action_choices()

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The trail is evidence: support reads it, nobody edits it."""

    list_display = ["created_at", "tenant", "actor_label", "what", "target"]
    list_filter = [ActionFilter, "tenant"]
    search_fields = ["actor_label", "target"]
    date_hierarchy = "created_at"

    @admin.display(description="Action", ordering="action")
    def what(self, event):
        return event.action_label

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
