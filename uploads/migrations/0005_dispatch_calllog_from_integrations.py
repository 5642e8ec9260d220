"""Dispatches and call logs join the uploads app, where the delivery engine lives.

The tables exist already (created by the integrations app); Django learns of the models here,
then renames the tables to this app's names. Dispatches gain `failures` (passing failures,
counted apart from "check again later" attempts) and `progress` (what a protocol's client
keeps between attempts).
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

DISPATCH_STATUS = [("waiting", "Waiting for its next attempt"), ("sending", "Sending"), ("delivered", "Delivered"),
                   ("failed", "Not delivered"), ("dry_run", "Dry run (Sandbox Mode)")]


class Migration(migrations.Migration):

    dependencies = [
        ("integrations", "0006_protocol_settings"),
        ("portal", "0001_initial"),
        ("uploads", "0004_upload_queued_at"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[
            migrations.CreateModel(
                name="Dispatch",
                fields=[
                    ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                    ("status", models.CharField(choices=DISPATCH_STATUS, default="waiting", max_length=10)),
                    ("attempts", models.PositiveSmallIntegerField(default=0)),
                    ("max_attempts", models.PositiveSmallIntegerField(default=5)),
                    ("next_attempt_at", models.DateTimeField(blank=True, null=True)),
                    ("claimed_at", models.DateTimeField(blank=True, null=True)),
                    ("requested_by", models.CharField(blank=True, help_text="Who sent or resent it", max_length=200)),
                    ("created_at", models.DateTimeField(auto_now_add=True)),
                    ("finished_at", models.DateTimeField(blank=True, null=True)),
                    ("tenant", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="dispatches",
                                                 to="portal.tenant")),
                    ("upload", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="dispatches",
                                                 to="uploads.upload")),
                ],
                options={"ordering": ["created_at", "id"], "db_table": "integrations_dispatch"},
            ),
            migrations.CreateModel(
                name="CallLog",
                fields=[
                    ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                    ("attempt", models.PositiveSmallIntegerField()),
                    ("dry_run", models.BooleanField(default=False)),
                    ("method", models.CharField(max_length=10)),
                    ("url", models.TextField()),
                    ("request_headers", models.JSONField(default=dict)),
                    ("request_body_size", models.BigIntegerField(default=0)),
                    ("request_body_sha256", models.CharField(blank=True, max_length=64)),
                    ("request_body_excerpt", models.TextField(blank=True, help_text="The start of the body, redacted")),
                    ("status_code", models.PositiveSmallIntegerField(blank=True, null=True)),
                    ("response_headers", models.JSONField(default=dict)),
                    ("response_excerpt", models.TextField(blank=True,
                                                          help_text="At most 64 KB of the response, redacted")),
                    ("duration_ms", models.PositiveIntegerField(default=0)),
                    ("error_class", models.CharField(blank=True, max_length=100)),
                    ("error_message", models.TextField(blank=True)),
                    ("retry_in_seconds", models.FloatField(blank=True, null=True,
                                                           help_text="When the attempt is retried: after how long")),
                    ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                    ("tenant", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="call_logs",
                                                 to="portal.tenant")),
                    ("upload", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="call_logs",
                                                 to="uploads.upload")),
                    ("dispatch", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="calls",
                                                   to="uploads.dispatch")),
                ],
                options={"ordering": ["created_at", "id"], "db_table": "integrations_calllog"},
            ),
        ]),
        migrations.AlterModelTable(name="dispatch", table=None),
        migrations.AlterModelTable(name="calllog", table=None),
        migrations.AddField(model_name="dispatch", name="failures", field=models.PositiveSmallIntegerField(default=0)),
        migrations.AddField(model_name="dispatch", name="progress", field=models.JSONField(blank=True, default=dict)),
    ]
