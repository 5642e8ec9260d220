"""Entries are identified within their REST source by what they say, no longer by the source_id
they came under (a renamed source sent the same entries again as new ones). Fingerprints are
computed anew; of entries that were stored twice under two source_ids, the first is kept."""

import hashlib
import json

from django.db import migrations


def fingerprint(date_text, name, content):  # entries.fingerprint as of this migration
    parts = json.dumps([date_text, name, content], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(parts.encode()).hexdigest()


def refingerprint(apps, schema_editor):
    FeedbackEntry = apps.get_model("source_import", "FeedbackEntry")
    seen, changed, repeated = set(), [], []
    for entry in FeedbackEntry.objects.order_by("integration_id", "id").iterator(chunk_size=2000):
        # Dates were stored from "YYYY-MM-DD HH:mm:ss" read as UTC, to the second.
        key = fingerprint(entry.date.strftime("%Y-%m-%d %H:%M:%S"), entry.name, entry.content)
        if (entry.integration_id, key) in seen:
            repeated.append(entry.pk)
            continue
        seen.add((entry.integration_id, key))
        if entry.fingerprint != key:
            entry.fingerprint = key
            changed.append(entry)
    FeedbackEntry.objects.filter(pk__in=repeated).delete()
    # Swapped through a temporary value, so that no two rows hold one fingerprint on the way.
    for entry in changed:
        FeedbackEntry.objects.filter(pk=entry.pk).update(fingerprint=f"~{entry.pk}")
    FeedbackEntry.objects.bulk_update(changed, ["fingerprint"], batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [("source_import", "0001_initial")]
    operations = [migrations.RunPython(refingerprint, migrations.RunPython.noop)]
