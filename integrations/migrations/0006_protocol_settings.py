"""Protocol settings move out of the integration's own columns.

Seed 000's data type becomes the integration's `key` (the name its endpoint knows it by) and
its other Data Format columns become the protocol's `settings` (JSON, checked by the
protocol's settings form). Issued credentials get a kind. Dispatches and call logs move to
the uploads app (the delivery engine lives there): only Django's state changes here, the
tables are renamed by uploads' migration.
"""

from django.db import migrations, models

DATA_FORMAT_FIELDS = ["data_format", "field_keys", "user_key", "date_key", "date_format", "flatten_json",
                      "flatten_separator", "unknown_user"]


def columns_to_settings(apps, schema_editor):
    Integration = apps.get_model("integrations", "Integration")
    for integration in Integration.objects.all():
        integration.key = integration.data_type
        integration.settings = {name: getattr(integration, name) for name in DATA_FORMAT_FIELDS}
        integration.save(update_fields=["key", "settings"])


def settings_to_columns(apps, schema_editor):
    Integration = apps.get_model("integrations", "Integration")
    for integration in Integration.objects.all():
        integration.data_type = integration.key
        for name in DATA_FORMAT_FIELDS:
            if name in integration.settings:
                setattr(integration, name, integration.settings[name])
        integration.save()


class Migration(migrations.Migration):

    dependencies = [
        ("integrations", "0005_dispatch_status_not_indexed"),
    ]

    operations = [
        migrations.AddField(
            model_name="integration", name="key", field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AddField(
            model_name="integration", name="settings", field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AlterField(
            model_name="integration", name="protocol",
            field=models.CharField(default="data_integration", max_length=32,
                                   help_text="One of the protocols in the registry (integrations/registry.py)"),
        ),
        migrations.AddField(
            model_name="integrationtoken", name="kind", field=models.CharField(default="auth_token", max_length=32),
        ),
        migrations.RunPython(columns_to_settings, settings_to_columns),
        migrations.RemoveConstraint(model_name="integration", name="one_data_type_per_direction"),
        *[migrations.RemoveField(model_name="integration", name=name) for name in ["data_type", *DATA_FORMAT_FIELDS]],
        migrations.AddConstraint(
            model_name="integration",
            constraint=models.UniqueConstraint(condition=~models.Q(key=""), fields=("tenant", "protocol", "direction", "key"),
                                               name="one_key_per_protocol_and_direction"),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="CallLog"), migrations.DeleteModel(name="Dispatch")],
        ),
    ]
