from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("uploads", "0007_accounts_and_groups"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="upload",
            index=models.Index(condition=models.Q(("status__in", ["waiting", "queued", "processing"])),
                               fields=["integration", "id"], name="upload_pending"),
        ),
    ]
