"""The automation API (/api/v3/integrations/): what the integration pages do, for scripts.

Thin: a serializer checks the input, the services in integrations/services.py do the work
(so the API is audited exactly like the pages), a serializer renders the answer. The caller
is `request.user`, an ApiPrincipal: its token names the tenant and goes in the audit trail.
A protocol's own settings (seed 000's data_type, data_format, field_keys …) sit beside the
generic fields, as they always have for API clients; they may also be sent as `settings`.
The protocol's settings form checks them.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from . import registry, services
from .models import Integration, Metric
from .rest import JSONParser


def drf_errors(exc):
    """A model's ValidationError as DRF field messages, in the API's field names."""
    if hasattr(exc, "error_dict"):
        return serializers.ValidationError(
            {("endpoint" if name == "endpoint_url" else name): messages for name, messages in exc.message_dict.items()}
        )
    return serializers.ValidationError({"non_field_errors": exc.messages})


def settings_help():
    lines = ["The protocol's own settings (write: only what changes)."]
    for protocol in registry.all_protocols():
        if protocol.settings_form is not None:
            names = ", ".join(protocol.settings_form.base_fields)
            lines.append(f"{protocol.slug}: {names}.")
    return " ".join(lines)


def json_types(serializer, data):
    """JSON values of the types the schema says, before DRF's fields coerce them (5 into "5",
    "true" into True, "7" into 7): a request the schema does not allow is refused."""
    if not isinstance(data, dict):
        return
    wrong = {}
    for name, field in serializer.fields.items():
        if field.read_only or name not in data or data[name] is None:
            continue
        value = data[name]
        if isinstance(field, serializers.BooleanField):
            ok = isinstance(value, bool)
        elif isinstance(field, serializers.IntegerField):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(field, serializers.CharField):
            ok = isinstance(value, str)
        elif isinstance(field, serializers.DictField):
            ok = isinstance(value, dict) and (not isinstance(field.child, serializers.CharField)
                                              or all(isinstance(v, str) for v in value.values()))
        else:
            continue
        if not ok:
            wrong[name] = [f"Not of the type the schema says ({type(value).__name__} given)."]
    if wrong:
        raise serializers.ValidationError(wrong)


class MetricSerializer(serializers.ModelSerializer):
    class Meta:
        model = Metric
        fields = ["name", "source_key", "aggregation"]

    def to_internal_value(self, data):
        json_types(self, data)
        return super().to_internal_value(data)


class IntegrationSerializer(serializers.ModelSerializer):
    protocol = serializers.ChoiceField(choices=registry.choices(), default="data_integration")
    settings = serializers.DictField(required=False, write_only=True, help_text=settings_help())
    key = serializers.CharField(read_only=True, help_text="The name the protocol's endpoint knows it by: the data "
                                "type of seed 000, an import source's source_id; empty when it has none.")
    metrics = MetricSerializer(many=True, required=False,
                               help_text="Set when the integration is created; change them later on the Metrics tab.")
    endpoint = serializers.CharField(
        source="endpoint_url", required=False, allow_blank=True, max_length=500,
        help_text="Outbound: the vendor's URL (required). Inbound: read-only, the portal's absolute endpoint "
        "that systems send to.",
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
        fields = ["id", "name", "direction", "protocol", "key", "settings", "sandbox", "enabled", "metrics",
                  "endpoint", "credentials", "credentials_set", "max_attempts", "created_at", "updated_at"]
        read_only_fields = ["id", "key", "created_at", "updated_at"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data.update(instance.protocol_spec.settings_of(instance))
        if instance.is_inbound:
            data["endpoint"] = instance.endpoint(self.context.get("request"))
        return data

    def to_internal_value(self, data):
        instance = self.instance
        if instance is not None and instance.is_inbound and hasattr(data, "get") \
                and data.get("endpoint") == instance.endpoint(self.context["request"]):
            data = {name: value for name, value in data.items() if name != "endpoint"}  # its own, as a GET gave it
        if hasattr(data, "items"):
            data = self._settings_beside(data)
        json_types(self, data)
        return super().to_internal_value(data)

    def _settings_beside(self, data):
        """Protocol settings given beside the generic fields go into `settings`."""
        slug = data.get("protocol") or (self.instance.protocol if self.instance else "data_integration")
        try:
            form = registry.get(slug).settings_form if isinstance(slug, str) else None
        except DjangoValidationError:
            return data  # the protocol field reports it
        if form is None and not isinstance(slug, str):
            return data  # not a protocol's name at all: the protocol field reports it
        names = set(form.base_fields) if form else set()
        data = dict(data)
        settings = dict(data.get("settings") or {}) if isinstance(data.get("settings"), dict) else {}
        for name in names & set(data):
            settings[name] = data.pop(name)
        if settings:
            data["settings"] = settings
        return data

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
        names = [m["name"] for m in data.get("metrics", [])]
        if len(set(names)) != len(names):
            raise serializers.ValidationError({"metrics": "Each metric name may appear only once."})
        return data

    @staticmethod
    def _metric_list(metrics):
        # A PATCH validates partially: a metric sent back may lack a field (it then differs).
        return sorted((m.get("name", ""), m.get("source_key", ""), m.get("aggregation", "")) for m in metrics)

    def create(self, validated_data):
        request = self.context["request"]
        validated_data.pop("sandbox", None)
        try:
            return services.create_integration(request.user.tenant, request.user, **validated_data)
        except DjangoValidationError as exc:
            raise drf_errors(exc) from None

    def update(self, instance, validated_data):
        credentials = validated_data.pop("credentials", None)
        if credentials is not None and instance.is_inbound:
            raise serializers.ValidationError({"credentials": "Inbound integrations get their credentials from the "
                                                              "portal (Credentials tab); credentials are for outbound "
                                                              "ones."})
        try:
            return services.update_integration(instance, self.context["request"].user, validated_data,
                                               credentials=credentials)
        except DjangoValidationError as exc:
            raise drf_errors(exc) from None
        except Integration.DoesNotExist:  # deleted meanwhile (a DELETE won the race)
            raise Http404 from None


@extend_schema_view(
    list=extend_schema(summary="List the tenant's integrations"),
    create=extend_schema(summary="Create an integration (it starts in Sandbox Mode)"),
    retrieve=extend_schema(summary="One integration"),
    partial_update=extend_schema(summary="Change an integration; sandbox: false leaves Sandbox Mode"),
    destroy=extend_schema(summary="Delete an integration, with its uploads and values"),
)
@extend_schema(tags=["integrations"])
class IntegrationViewSet(viewsets.ModelViewSet):
    """The configuration side; uploads.api adds what acts on uploads (send a file, purge)."""

    serializer_class = IntegrationSerializer
    queryset = Integration.objects.all()  # narrowed to the caller's tenant in get_queryset
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    parser_classes = [JSONParser]  # nested metrics, settings and credentials need JSON
    lookup_value_regex = "[^/]+"  # any id reaches the view: one that is not a number is a JSON 404 too

    def get_queryset(self):
        return Integration.objects.filter(tenant=self.request.user.tenant).prefetch_related("metrics").order_by(
            "name", "id"
        )

    def perform_destroy(self, instance):
        try:
            services.delete_integration(instance, self.request.user)
        except Integration.DoesNotExist:  # deleted meanwhile by another request
            raise Http404 from None
