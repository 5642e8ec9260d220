"""The Upload API's part of the REST API (/api/v3/upload-api/…, in the OpenAPI schema): the
submissions of the tenant's Upload API integrations, and the time and event records they
produced, with their ids. Everything is narrowed to the tenant of the caller's Standard API
token. As with metric values, a sandboxed integration's records are listed only when the
`integration` parameter names it."""

from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers

from integrations.rest import id_filter, query, text_filter

from . import submissions
from .credentials import PROTOCOL
from .models import EventRecord, Submission, TimeRecord


class SubmissionSerializer(serializers.ModelSerializer):
    processing_token = serializers.CharField(source="token", help_text="What UploadData answered; GetResults' token")
    integration = serializers.IntegerField(source="integration_id")
    upload = serializers.IntegerField(source="upload_id", help_text="The upload it is in upload history")
    status = serializers.SerializerMethodField(help_text="As GetResults' dataKey=status says it: queued, waiting, "
                                                         "processing, completedsuccessfully, completedwitherrors, "
                                                         "purged")
    replaced_by = serializers.CharField(source="replaced_by.token", allow_null=True, default=None,
                                        help_text="The processing token of the later submission of the same Name "
                                                  "whose records replaced these")
    created = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Submission
        fields = ["processing_token", "name", "integration", "upload", "status", "overwrite", "replaced_by",
                  "created"]
        read_only_fields = fields

    @extend_schema_field(str)
    def get_status(self, submission):
        return submissions.state(submission)


class TimeRecordSerializer(serializers.ModelSerializer):
    integration = serializers.IntegerField(source="integration_id")
    name = serializers.CharField(source="submission.name", help_text="The Name of the submission it came in")
    processing_token = serializers.CharField(source="submission.token")
    upload = serializers.IntegerField(source="submission.upload_id")
    email = serializers.CharField(source="account.email", allow_null=True, default=None,
                                  help_text="The account's, when the Reference is an email")

    class Meta:
        model = TimeRecord
        fields = ["id", "integration", "name", "processing_token", "upload", "row", "reference", "email", "start",
                  "end"]
        read_only_fields = fields


class EventRecordSerializer(TimeRecordSerializer):
    class Meta(TimeRecordSerializer.Meta):
        model = EventRecord
        fields = TimeRecordSerializer.Meta.fields + ["description", "time_reference"]
        read_only_fields = fields


class RecordQuery(serializers.Serializer):
    integration = id_filter("Only this integration's. A sandboxed integration's records are listed only when "
                            "named here.")
    name = text_filter("Only those of submissions with this Name")
    processing_token = text_filter("Only this submission's")
    upload = id_filter("Only those of this upload (upload history)")


class TenantList(generics.ListAPIView):
    def narrowed(self, rows, prefix="", sandbox_hidden=True):
        wanted = query(RecordQuery, self.request)
        rows = rows.filter(tenant=self.request.user.tenant)
        if "integration" in wanted:
            rows = rows.filter(integration_id=wanted["integration"])
        elif sandbox_hidden:
            rows = rows.filter(integration__sandbox=False)
        if "name" in wanted:
            rows = rows.filter(**{f"{prefix}name": wanted["name"]})
        if "processing_token" in wanted:
            rows = rows.filter(**{f"{prefix}token": wanted["processing_token"].strip().lower()})
        if "upload" in wanted:
            rows = rows.filter(**{f"{prefix}upload_id": wanted["upload"]})
        return rows


@extend_schema(tags=["upload api"], summary="Upload API submissions, newest first", parameters=[RecordQuery])
class SubmissionList(TenantList):
    serializer_class = SubmissionSerializer
    queryset = Submission.objects.all()  # narrowed to the caller's tenant in get_queryset

    def get_queryset(self):
        rows = self.narrowed(Submission.objects.filter(integration__protocol=PROTOCOL), sandbox_hidden=False)
        return rows.select_related("upload", "replaced_by").order_by("-created_at", "-id")


@extend_schema(tags=["upload api"], summary="Time records (a submission's Data rows), newest first",
               parameters=[RecordQuery])
class TimeRecordList(TenantList):
    serializer_class = TimeRecordSerializer
    queryset = TimeRecord.objects.all()
    model = TimeRecord

    def get_queryset(self):
        rows = self.narrowed(self.model.objects.all(), prefix="submission__")
        return rows.select_related("submission", "account").order_by("-id")


@extend_schema(tags=["upload api"], summary="Event records (a submission's EventData rows), newest first",
               parameters=[RecordQuery])
class EventRecordList(TimeRecordList):
    serializer_class = EventRecordSerializer
    queryset = EventRecord.objects.all()
    model = EventRecord


urlpatterns = [
    path("upload-api/submissions/", SubmissionList.as_view(), name="api-upload-api-submissions"),
    path("upload-api/time-records/", TimeRecordList.as_view(), name="api-upload-api-time-records"),
    path("upload-api/event-records/", EventRecordList.as_view(), name="api-upload-api-event-records"),
]
