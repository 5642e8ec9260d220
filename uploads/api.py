"""The upload side of the REST API (/api/v3/): sending files to integrations, purging them, and
reading back what came in and what it became (uploads, their call logs, metric values).

Everything is narrowed to the tenant of the caller's token. Sandbox values never show outside
their integration: /metric-values/ lists a sandboxed integration's values only when
`data_type` names it.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import (
    OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view, inline_serializer,
)
from rest_framework import exceptions, generics, parsers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from integrations import api as integrations_api
from integrations.models import Direction, Integration
from integrations.rest import query, text_filter

from .delivery import dispatch
from .errors import IntakeError, error
from .intake import content_type_for_file, receive, too_large
from .models import MetricValue, Upload
from .purge import purge_integration

DETAIL = inline_serializer("Detail", fields={"detail": serializers.CharField()})

# Room for the multipart envelope around a file of the largest size the intake takes.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def too_large_to_read(integration, request):
    """A body that cannot hold an acceptable file is refused before it is read."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    limit = integration.protocol_spec.max_upload_bytes
    if length > limit + MULTIPART_OVERHEAD_BYTES:
        return too_large(length, limit)
    return None


def send_file(integration, file, principal):
    """Hand a file posted to the API to the intake (it is processed inbound, dispatched outbound).

    Raises what the intake raises: IntakeError for a bad file (`.errors`, `.status`), and for
    outbound a ValidationError when the integration cannot send.
    """
    content_type = (file.content_type or "").split(";")[0].strip().lower()
    if content_type in ("", "application/octet-stream"):
        # No usable type on the part: the file's extension decides, else the Data Format.
        content_type = content_type_for_file(integration, file.name)
    return receive(integration, file, content_type=content_type, channel=Upload.Channel.API,
                   submitted_via=str(principal), filename=file.name or "")


class UploadFileSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="The file: CSV or JSON as the integration's Data Format says. The part's content type decides "
        "how it is read; without one, the integration's data format is assumed."
    )


class ProblemSerializer(serializers.Serializer):
    """How the intake and the outbound dispatch say what is wrong with a file (seed 000's error ids)."""

    errors = inline_serializer("UploadError", fields={
        "id": serializers.CharField(help_text="import_parse_json, import_parse_csv, import_transform_data, …"),
        "description": serializers.CharField(),
        "row": serializers.IntegerField(required=False, allow_null=True),
        "column": serializers.CharField(required=False, allow_null=True),
    }, many=True)


PurgeResultSerializer = inline_serializer("PurgeResult", fields={
    "values": serializers.IntegerField(help_text="Metric values deleted"),
    "uploads": serializers.IntegerField(help_text="Uploads marked purged"),
    "files": serializers.IntegerField(help_text="Stored files deleted"),
})


class CallSerializer(serializers.Serializer):
    """One HTTP exchange of an outbound send (a CallLog row), secrets redacted."""

    attempt = serializers.IntegerField()
    method = serializers.CharField()
    url = serializers.CharField(help_text="With secrets redacted")
    status = serializers.IntegerField(source="status_code", allow_null=True,
                                      help_text="The vendor's HTTP status; null when no answer came back")
    duration_ms = serializers.IntegerField()
    error = serializers.SerializerMethodField(help_text="What went wrong, e.g. 'ConnectTimeout: …'; empty if nothing did")
    dry_run = serializers.BooleanField(help_text="Sandbox Mode: logged, not sent")
    created = serializers.DateTimeField(source="created_at")

    @extend_schema_field(str)
    def get_error(self, call):
        # Without an error class the message is only a note (a dry run's "not sent").
        if not call.error_class:
            return ""
        return f"{call.error_class}: {call.error_message}" if call.error_message else call.error_class


class UploadSerializer(serializers.ModelSerializer):
    integration = serializers.IntegerField(source="integration_id", read_only=True)
    data_type = serializers.CharField(source="integration.key", read_only=True,
                                      help_text="The integration's data type (or the key its protocol names it by)")
    direction = serializers.ChoiceField(source="integration.direction", choices=Direction.choices, read_only=True)
    created = serializers.DateTimeField(source="created_at", read_only=True)
    started = serializers.DateTimeField(source="started_at", read_only=True, allow_null=True,
                                        help_text="When processing or sending began; null while queued")
    finished = serializers.DateTimeField(source="finished_at", read_only=True, allow_null=True,
                                         help_text="When it ended; null until then")
    errors = serializers.ListField(child=serializers.DictField(), read_only=True,
                                   help_text='[{"id", "description", "row", "column"}], the first 100 at most')

    class Meta:
        model = Upload
        fields = ["id", "integration", "data_type", "direction", "channel", "status", "message", "filename",
                  "size_bytes", "submitted_via", "records", "values_written", "errors", "sandbox", "created",
                  "started", "finished"]
        read_only_fields = fields


class UploadDetailSerializer(UploadSerializer):
    calls = serializers.SerializerMethodField(help_text="Outbound: every HTTP exchange with the vendor, in order")

    class Meta(UploadSerializer.Meta):
        fields = UploadSerializer.Meta.fields + ["calls"]

    @extend_schema_field(CallSerializer(many=True))
    def get_calls(self, upload):
        if upload.integration.is_inbound:
            return []
        return CallSerializer(upload.call_logs.order_by("created_at", "id"), many=True).data


class UploadQuery(serializers.Serializer):
    """The filters of the upload list; a value the schema does not allow is a 400, not an empty list."""

    data_type = text_filter("Only the uploads of integrations with this DATA_TYPE")
    direction = serializers.ChoiceField(Direction.choices, required=False, help_text="inbound or outbound")
    status = serializers.ChoiceField(Upload.Status.choices, required=False,
                                     help_text="e.g. queued, processed, failed, delivered")


@extend_schema_view(
    list=extend_schema(summary="Uploads, newest first", parameters=[UploadQuery]),
    retrieve=extend_schema(summary="One upload; for outbound, with its call log"),
)
@extend_schema(tags=["uploads"])
class UploadViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Upload.objects.all()  # narrowed to the caller's tenant in get_queryset
    lookup_value_regex = "[^/]+"  # any id reaches the view: one that is not a number is a JSON 404 too

    def get_serializer_class(self):
        return UploadSerializer if self.action == "list" else UploadDetailSerializer

    def get_queryset(self):
        uploads = Upload.objects.filter(tenant=self.request.user.tenant).select_related("integration")
        if self.action != "list":
            return uploads
        wanted = query(UploadQuery, self.request)
        for name, lookup in (("data_type", "integration__key"), ("direction", "integration__direction"),
                             ("status", "status")):
            value = wanted.get(name)
            if value:
                uploads = uploads.filter(**{lookup: value})
        return uploads

    @extend_schema(summary="Send an outbound upload again: a new series of attempts (audited)", request=None,
                   responses={202: UploadDetailSerializer,
                              409: OpenApiResponse(DETAIL, description="Inbound, purged, or still being sent")})
    @action(detail=True, methods=["post"])
    def resend(self, request, pk=None):
        try:
            upload = dispatch.resend(self.get_object(), request.user)
        except DjangoValidationError as exc:
            return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_409_CONFLICT)
        return Response(UploadDetailSerializer(upload, context=self.get_serializer_context()).data,
                        status=status.HTTP_202_ACCEPTED)


class MetricValueQuery(serializers.Serializer):
    data_type = text_filter(
        "Only this inbound integration's values. A sandboxed integration's values are listed only when "
        "named here.")
    email = text_filter("Only this account's values (case-insensitive)")
    date_from = serializers.DateField(required=False, help_text="YYYY-MM-DD, inclusive")
    date_to = serializers.DateField(required=False, help_text="YYYY-MM-DD, inclusive; not before date_from")

    def validate(self, data):
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise serializers.ValidationError({"date_to": "date_to is before date_from."})
        return data


class MetricValueSerializer(serializers.ModelSerializer):
    email = serializers.CharField(source="account.email")
    metric = serializers.CharField(source="metric.name")
    data_type = serializers.CharField(source="integration.key")

    class Meta:
        model = MetricValue
        fields = ["email", "date", "metric", "value", "data_type"]
        read_only_fields = fields


@extend_schema(tags=["metric values"], summary="Metric values: (account, date, metric) → value",
               parameters=[MetricValueQuery])
class MetricValueList(generics.ListAPIView):
    serializer_class = MetricValueSerializer
    queryset = MetricValue.objects.all()  # narrowed to the caller's tenant in get_queryset

    def get_queryset(self):
        wanted = query(MetricValueQuery, self.request)
        tenant = self.request.user.tenant
        integrations = Integration.objects.filter(tenant=tenant, direction=Direction.INBOUND)
        if "data_type" in wanted:
            # Naming the integration is the one way to see its sandbox values.
            integrations = integrations.filter(key=wanted["data_type"])
        else:
            integrations = integrations.filter(sandbox=False)
        # Through the tenant's integrations: values have an (integration, date) index and no (tenant) one.
        values = MetricValue.objects.filter(tenant=tenant, integration__in=integrations).select_related(
            "account", "metric", "integration")
        if "email" in wanted:
            values = values.filter(account__email__iexact=wanted["email"].strip())
        if "date_from" in wanted:
            values = values.filter(date__gte=wanted["date_from"])
        if "date_to" in wanted:
            values = values.filter(date__lte=wanted["date_to"])
        return values.order_by("date", "account__email", "metric__name", "id")


@extend_schema(tags=["integrations"])
class IntegrationViewSet(integrations_api.IntegrationViewSet):
    """/api/v3/integrations/: the configuration API, and the actions on an integration's uploads."""

    @extend_schema(
        summary="Purge All Data (Sandbox Mode only)", request=None,
        responses={200: PurgeResultSerializer,
                   409: OpenApiResponse(DETAIL, description="The integration is not in Sandbox Mode.")},
    )
    @action(detail=True, methods=["post"])
    def purge(self, request, pk=None):
        try:
            counts = purge_integration(self.get_object(), request.user)
        except DjangoValidationError as exc:
            return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_409_CONFLICT)
        return Response(counts)

    @extend_schema(
        summary="Send a file: inbound, the same intake as the data endpoint; outbound, a dispatch to the vendor",
        request={"multipart/form-data": UploadFileSerializer},
        responses={201: UploadDetailSerializer, 400: ProblemSerializer, 413: ProblemSerializer,
                   409: OpenApiResponse(DETAIL, description="Outbound: the integration cannot send now")},
    )
    @action(detail=True, methods=["post"], parser_classes=[parsers.MultiPartParser])
    def uploads(self, request, pk=None):
        integration = self.get_object()
        problem = too_large_to_read(integration, request)
        if problem is not None:
            return Response({"errors": problem.errors}, status=problem.status)
        try:
            form = UploadFileSerializer(data=request.data)
            valid = form.is_valid()
        except exceptions.ParseError as exc:  # not multipart, or cut short
            return Response({"errors": [error("request_malformed", str(exc.detail))]}, status=400)
        if not valid:  # said the intake's way, as the schema says a 400 here is, and DRF's (by field)
            return Response({"errors": [error("file_required", " ".join(str(m) for m in messages), column=name)
                                        for name, messages in form.errors.items()], **form.errors}, status=400)
        try:
            upload = send_file(integration, form.validated_data["file"], request.user)
        except IntakeError as problem:
            return Response({"errors": problem.errors}, status=problem.status)
        except DjangoValidationError as exc:  # an outbound integration that cannot send now
            return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_409_CONFLICT)
        return Response(UploadDetailSerializer(upload, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)
