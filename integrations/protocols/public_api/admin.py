from django.contrib import admin

from .models import Pull, PulledScore, Scorecard, ScorecardEntry


class ScorecardEntryInline(admin.TabularInline):
    model = ScorecardEntry
    extra = 0
    raw_id_fields = ["metric"]


@admin.register(Scorecard)
class ScorecardAdmin(admin.ModelAdmin):
    list_display = ["tenant", "attainment_cap", "updated_at"]
    inlines = [ScorecardEntryInline]


@admin.register(Pull)
class PullAdmin(admin.ModelAdmin):
    """Pulls from vendors' public APIs, for support: read only (their calls are in the call log)."""

    list_display = ["id", "created_at", "tenant", "integration", "period", "period_start", "status", "stage",
                    "message"]
    list_filter = ["status", "period", "tenant"]
    list_select_related = ["tenant", "integration"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(PulledScore)
class PulledScoreAdmin(admin.ModelAdmin):
    list_display = ["period_start", "period", "kind", "entity_type", "entity_id", "score", "integration"]
    list_filter = ["kind", "period", "entity_type"]
    search_fields = ["entity_id", "name"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
