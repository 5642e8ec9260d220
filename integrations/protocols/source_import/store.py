"""Storing a request's entries, each one once per integration."""

from .entries import DATE_FORMAT, fingerprint
from .models import FeedbackEntry

BATCH_SIZE = 1000
LOOKUP_SIZE = 900  # fingerprints per query (SQLite allows 999 parameters)


def store_entries(upload, frame):
    """Store the entries of a checked request that are not stored yet; returns how many were new.

    Entries already stored (sent before) or repeated in the request are left out before any
    row is built, so that sending a file again costs lookups, not inserts. Processing holds the
    integration's row lock, so nothing else stores entries for it meanwhile; the unique
    fingerprint stays the last word all the same (ignore_conflicts).
    """
    integration = upload.integration
    source_id = frame.attrs["source_id"]
    dates = frame["date"].dt.tz_localize("UTC").dt.to_pydatetime()
    date_texts = frame["date"].dt.strftime(DATE_FORMAT)  # the date as stored, to the second
    distinct = {}  # fingerprint → (date, name, content), the first of each
    for date, date_text, name, content in zip(dates, date_texts, frame["name"], frame["content"]):
        distinct.setdefault(fingerprint(date_text, name, content), (date, name, content))
    known = _stored(integration, list(distinct))
    new = [FeedbackEntry(tenant_id=integration.tenant_id, integration=integration, upload=upload,
                         source_id=source_id, date=date, name=name, content=content, fingerprint=key)
           for key, (date, name, content) in distinct.items() if key not in known]
    FeedbackEntry.objects.bulk_create(new, batch_size=BATCH_SIZE, ignore_conflicts=True)
    return len(new)


def _stored(integration, fingerprints):
    """Which of these fingerprints the integration has stored already."""
    stored = FeedbackEntry.objects.filter(integration=integration).order_by()  # unordered: by the unique index
    found = set()
    for start in range(0, len(fingerprints), LOOKUP_SIZE):
        found.update(stored.filter(fingerprint__in=fingerprints[start:start + LOOKUP_SIZE])
                     .values_list("fingerprint", flat=True))
    return found
