"""What REST sources received, read back through the public API: GET /api/v3/feedback/.

Authenticated by Standard API tokens (REST_FRAMEWORK's defaults) and narrowed to the token's
tenant. Entries of a source in Sandbox Mode are listed only when `source_id` names it, as
/api/v3/metric-values/ does for a data type: trying a source out never leaks into a tenant's
feed. The path answers with and without its trailing slash, never with a redirect.
"""

import datetime

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import generics, serializers

from integrations.models import Direction, Integration
from integrations.rest import query, text_filter

from .inbound import PROTOCOL
from .models import FeedbackEntry


class FeedbackQuery(serializers.Serializer):
    """The filters; a value that is not one is a 400 naming it, never an empty list."""

    source_id = text_filter(
        "Only this REST source's entries. A source in Sandbox Mode has its entries listed only when named here.")
    date_from = serializers.DateField(required=False, help_text="YYYY-MM-DD: entries dated this day (UTC) or later")
    date_to = serializers.DateField(required=False, help_text="YYYY-MM-DD: entries dated this day (UTC) or earlier")

    def validate(self, data):
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise serializers.ValidationError({"date_to": "date_to is before date_from."})
        return data


class FeedbackEntrySerializer(serializers.ModelSerializer):
    source_id = serializers.CharField(source="integration.key", read_only=True, help_text=(
        "The REST source's source_id as it is configured now (a source renamed since keeps its entries)"))
    integration = serializers.IntegerField(source="integration_id", read_only=True,
                                           help_text="The REST source's integration id")
    upload = serializers.IntegerField(source="upload_id", read_only=True, allow_null=True, help_text=(
        "The import request that brought it first (GET /api/v3/uploads/{id}/)"))
    date = serializers.DateTimeField(read_only=True, help_text=(
        "The entry's date as sent (YYYY-MM-DD HH:mm:ss, read as UTC), in ISO 8601"))
    received = serializers.DateTimeField(source="created_at", read_only=True, help_text="When the portal stored it")

    class Meta:
        model = FeedbackEntry
        fields = ["id", "source_id", "integration", "date", "name", "content", "upload", "received"]
        read_only_fields = fields


ENTRY_EXAMPLE = {"id": 812, "source_id": "src-1", "integration": 14, "date": "2024-03-08T00:29:00Z",
                 "name": "User 1", "content": "Feedback 1", "upload": 3051, "received": "2024-03-08T00:29:04.118Z"}


def start_of(day):
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)


def feedback_of(tenant, source_id=None, date_from=None, date_to=None):
    """The tenant's feedback entries, newest first. The dates bound the entries' own dates, in
    whole UTC days, as ranges on the column (not its date part) so that an index can serve them."""
    sources = Integration.objects.filter(tenant=tenant, protocol=PROTOCOL, direction=Direction.INBOUND)
    if source_id is not None:
        # Naming the source is the one way to see a sandboxed source's entries.
        sources = sources.filter(key=source_id)
    else:
        sources = sources.filter(sandbox=False)
    # The sources first, then their entries by the (integration, date) index alone, which also
    # counts them: joined to the sources, or narrowed by tenant again, SQLite reads every entry
    # of the tenant (count and first page of 400,000 entries: 40 ms this way, 1.8 s joined).
    ids = list(sources.values_list("pk", flat=True))
    entries = FeedbackEntry.objects.filter(integration__in=ids)
    if date_from is not None:
        entries = entries.filter(date__gte=start_of(date_from))
    if date_to is not None:
        entries = entries.filter(date__lt=start_of(date_to + datetime.timedelta(days=1)))
    return entries.select_related("integration").order_by("-date", "-id")


@extend_schema(
    tags=["feedback"],
    summary="Feedback entries received by REST sources (POST /api/v1/source/import), newest first",
    description=(
        "Each entry is stored once per REST source: an entry sent again (a retried request, a file imported "
        "twice) is not listed twice. Entries of a source in Sandbox Mode are listed only when `source_id` names "
        "that source."),
    parameters=[FeedbackQuery],
    responses={
        200: FeedbackEntrySerializer(many=True),
        400: OpenApiResponse(OpenApiTypes.OBJECT, description='A filter is wrong, e.g. {"date_from": ["Date has '
                             'wrong format. Use one of these formats instead: YYYY-MM-DD."]}'),
    },
    # drf-spectacular puts a list's example in the paginated envelope itself.
    examples=[OpenApiExample("An entry", value=ENTRY_EXAMPLE, response_only=True, status_codes=["200"])],
)
class FeedbackList(generics.ListAPIView):
    serializer_class = FeedbackEntrySerializer
    queryset = FeedbackEntry.objects.none()  # narrowed to the caller's tenant in get_queryset
    http_method_names = ["get", "head", "options"]

    def get_queryset(self):
        return feedback_of(self.request.user.tenant, **query(FeedbackQuery, self.request))


def urlpatterns():
    return [
        path("feedback/", FeedbackList.as_view(), name="api-feedback"),
        # The same list without the slash, answered directly: a client that does not follow redirects gets it too.
        path("feedback", FeedbackList.as_view(schema=None), name="api-feedback_noslash"),
    ]
