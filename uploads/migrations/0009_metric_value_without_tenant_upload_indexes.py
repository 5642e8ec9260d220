# Drops MetricValue's (tenant) and (upload) indexes: each costs about 40 ms of writing a 15 MB
# upload's 45,000 values (see uploads.models.MetricValue). The indexes are dropped by name, the
# same on PostgreSQL and SQLite, so that SQLite does not copy the whole table twice to alter the fields.

import django.db.models.deletion
from django.db import migrations, models

INDEXES = [("uploads_metricvalue_tenant_id_8214cf1a", "tenant_id"), ("uploads_metricvalue_upload_id_18020655", "upload_id")]


class Migration(migrations.Migration):

    dependencies = [
        ('portal', '0002_audit_upload_send_actions'),
        ('uploads', '0008_upload_pending_index'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(f'DROP INDEX IF EXISTS "{name}"',
                                  reverse_sql=f'CREATE INDEX "{name}" ON "uploads_metricvalue" ("{column}")')
                for name, column in INDEXES
            ],
            state_operations=[
                migrations.AlterField(
                    model_name='metricvalue',
                    name='tenant',
                    field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='metric_values', to='portal.tenant'),
                ),
                migrations.AlterField(
                    model_name='metricvalue',
                    name='upload',
                    field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='values', to='uploads.upload'),
                ),
            ],
        ),
    ]
