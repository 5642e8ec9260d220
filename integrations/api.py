"""The automation API (/api/v3/integrations/): what the integration pages do, for scripts.

Thin: a serializer checks the input, the services in integrations/services.py do the work
(so the API is audited exactly like the pages), a serializer renders the answer. The caller
is `request.user`, an ApiPrincipal: its token names the tenant and goes in the audit trail.
"""

import requests
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view, inline_serializer
from rest_framework import parsers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from uploads.api import DETAIL, UploadDetailSerializer, send_file, too_large_to_read
from uploads.errors import IntakeError
from uploads.purge import purge_integration

from . import services
from .models import Direction, Integration, Metric, Protocol
from .outbound import RefusedDestination, check_destination

# What the portal speaks today (as the create page offers); the other reference protocols
# arrive one module each in integrations/protocols/.
SPOKEN_PROTOCOLS = [Protocol.DATA_INTEGRATION]


def drf_errors(exc):
    """A model's ValidationError as DRF field messages, in the API's field names."""
    if hasattr(exc, "error_dict"):
        return serializers.ValidationError(
            {("endpoint" if name == "endpoint_url" else name): messages for name, messages in exc.message_dict.items()}
        )
    return serializers.ValidationError({"non_field_errors": exc.messages})


class MetricSerializer(serializers.ModelSerializer):
    class Meta:
        model = Metric
        fields = ["name", "source_key", "aggregation"]


class IntegrationSerializer(serializers.ModelSerializer):
    protocol = serializers.ChoiceField(choices=[(p.value, p.label) for p in SPOKEN_PROTOCOLS],
                                       default=Protocol.DATA_INTEGRATION)
    field_keys = serializers.ListField(child=serializers.CharField(max_length=100), required=False,
                                       help_text="CSV headers or JSON keys the file must contain.")
    metrics = MetricSerializer(many=True, required=False,
                               help_text="Set when the integration is created; change them later on the Metrics tab.")
    endpoint = serializers.URLField(
        source="endpoint_url", required=False, allow_blank=True, max_length=500,
        help_text="Outbound: the vendor's URL (required). Inbound: read-only, the portal's absolute ENDPOINT "
        "that systems POST to, with its trailing slash.",
    )
    credentials = serializers.DictField(
        child=serializers.CharField(), write_only=True, required=False, allow_empty=False,
        help_text='Outbound only, write-only: the secrets the vendor issued, e.g. {"auth_token": "…"}. '
        "Stored encrypted, never returned; sending them again replaces them.",
    )
    credentials_set = serializers.BooleanField(source="has_vendor_credentials", read_only=True,
                                               help_text="Outbound: whether vendor credentials are stored.")
    max_attempts = serializers.IntegerField(min_value=1, max_value=20, required=False,
                                            help_text="Outbound: attempts per send before it is given up.")
    sandbox = serializers.BooleanField(
        required=False, help_text="Sandbox Mode. A new integration always starts in it; PATCH to turn it off.",
    )

    class Meta:
        model = Integration
        fields = [
            "id", "name", "direction", "protocol", "data_type", "data_format", "field_keys", "user_key", "date_key",
            "date_format", "flatten_json", "flatten_separator", "unknown_user", "sandbox", "enabled", "metrics",
            "endpoint", "credentials", "credentials_set", "max_attempts", "created_at", "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if instance.is_inbound:
            data["endpoint"] = instance.endpoint(self.context.get("request"))
        return data

    def to_internal_value(self, data):
        instance = self.instance
        if instance is not None and instance.is_inbound and hasattr(data, "get") \
                and data.get("endpoint") == instance.endpoint(self.context["request"]):
            data = {name: value for name, value in data.items() if name != "endpoint"}  # its own, as a GET gave it
        return super().to_internal_value(data)

    def validate(self, data):
        instance = self.instance
        if instance is not None:
            for name in ("direction", "protocol"):
                if name in self.initial_data and data.get(name) != getattr(instance, name):
                    raise serializers.ValidationError({name: "This cannot be changed once the integration exists."})
            if "metrics" in data:
                # What a GET gave back may be sent back; a different list may not.
                if self._metric_list(data.pop("metrics")) != self._metric_list(instance.metrics.values()):
                    raise serializers.ValidationError(
                        {"metrics": "Metrics are set when the integration is created; change them on the Metrics tab."}
                    )
        elif data.get("sandbox") is False:
            raise serializers.ValidationError(
                {"sandbox": "A new integration always starts in Sandbox Mode; turn it off with PATCH later."}
            )

        def current(name, default=None):
            if name in data:
                return data[name]
            return getattr(instance, name) if instance is not None else default

        direction = current("direction", Direction.INBOUND)
        if direction == Direction.INBOUND:
            if data.get("endpoint_url"):
                raise serializers.ValidationError(
                    {"endpoint": "An inbound integration's ENDPOINT is the portal's own; it cannot be set."}
                )
            if "credentials" in data:
                raise serializers.ValidationError(
                    {"credentials": "Inbound integrations get an AUTH_TOKEN from the portal (Credentials tab); "
                     "credentials are for outbound ones."}
                )
        elif not current("endpoint_url"):
            raise serializers.ValidationError({"endpoint": "An outbound integration needs the vendor's endpoint."})
        elif instance is None and "auth_token" not in data.get("credentials", {}):
            # Seed 000's client sends `Authorization: Token AUTH_TOKEN`, as the create page asks for it.
            raise serializers.ValidationError(
                {"credentials": 'An outbound integration needs the AUTH_TOKEN the vendor issued you: '
                 '{"auth_token": "…"}.'}
            )
        if direction == Direction.OUTBOUND and "endpoint_url" in data:
            self._validate_destination(data["endpoint_url"])

        keys = current("field_keys", [])
        if len(set(keys)) != len(keys):
            raise serializers.ValidationError({"field_keys": "Each field key may appear only once."})
        for name in ("user_key", "date_key"):
            value = current(name, Integration._meta.get_field(name).default)
            if keys and value not in keys and (name in data or "field_keys" in data):
                raise serializers.ValidationError({name: f"“{value}” is not one of the field keys."})
        self._validate_metrics(data.get("metrics", []), keys, current("user_key", "email"), current("date_key", "date"))

        data_type = current("data_type")
        tenant = self.context["request"].user.tenant
        clash = Integration.objects.filter(tenant=tenant, direction=direction, data_type=data_type)
        if instance is not None:
            clash = clash.exclude(pk=instance.pk)
        if clash.exists():
            raise serializers.ValidationError(
                {"data_type": f"This tenant already has an {direction} integration with data type “{data_type}”."}
            )
        return data

    def _validate_destination(self, url):
        """Say now what every send would refuse (http, non-public hosts), not at the first send."""
        try:
            check_destination(url)
        except RefusedDestination as exc:
            raise serializers.ValidationError({"endpoint": str(exc)}) from None
        except requests.ConnectionError:
            pass  # the name does not resolve today; the send will say so if it still does not

    def _validate_metrics(self, metrics, keys, user_key, date_key):
        names = [m["name"] for m in metrics]
        if len(set(names)) != len(names):
            raise serializers.ValidationError({"metrics": "Each metric name may appear only once."})
        for metric in metrics:
            if metric["source_key"] in (user_key, date_key) or metric["source_key"] not in keys:
                raise serializers.ValidationError(
                    {"metrics": f"Metric “{metric['name']}”: source key “{metric['source_key']}” must be one of the "
                     "field keys other than the user and date keys."}
                )

    @staticmethod
    def _metric_list(metrics):
        return sorted((m["name"], m["source_key"], m["aggregation"]) for m in metrics)

    def create(self, validated_data):
        request = self.context["request"]
        validated_data.pop("sandbox", None)
        try:
            return services.create_integration(request.user.tenant, request.user, **validated_data)
        except DjangoValidationError as exc:
            raise drf_errors(exc) from None

    def update(self, instance, validated_data):
        credentials = validated_data.pop("credentials", None)
        try:
            return services.update_integration(instance, self.context["request"].user, validated_data,
                                               credentials=credentials)
        except DjangoValidationError as exc:
            raise drf_errors(exc) from None


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


@extend_schema_view(
    list=extend_schema(summary="List the tenant's integrations"),
    create=extend_schema(summary="Create an integration (it starts in Sandbox Mode)"),
    retrieve=extend_schema(summary="One integration"),
    partial_update=extend_schema(summary="Change an integration; sandbox: false leaves Sandbox Mode"),
    destroy=extend_schema(summary="Delete an integration, with its uploads and values"),
)
@extend_schema(tags=["integrations"])
class IntegrationViewSet(viewsets.ModelViewSet):
    serializer_class = IntegrationSerializer
    queryset = Integration.objects.all()  # narrowed to the caller's tenant in get_queryset
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    parser_classes = [parsers.JSONParser]  # nested metrics and credentials need JSON

    def get_queryset(self):
        return Integration.objects.filter(tenant=self.request.user.tenant).prefetch_related("metrics").order_by(
            "name", "id"
        )

    def perform_destroy(self, instance):
        services.delete_integration(instance, self.request.user)

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
        form = UploadFileSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            upload = send_file(integration, form.validated_data["file"], request.user)
        except IntakeError as problem:
            return Response({"errors": problem.errors}, status=problem.status)
        except DjangoValidationError as exc:  # an outbound integration that cannot send now
            return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_409_CONFLICT)
        return Response(UploadDetailSerializer(upload, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)
