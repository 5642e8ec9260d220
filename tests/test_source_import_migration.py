"""The migration that identifies feedback entries by what they say, without their source_id:
existing entries get the fingerprints new requests compute, and an entry stored twice under two
source_ids of one source is kept once."""

import datetime
import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from integrations import services
from integrations.protocols.source_import.entries import fingerprint
from integrations.protocols.source_import.models import FeedbackEntry

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("source_import", "0001_initial")]
AFTER = [("source_import", "0002_fingerprint_without_source_id")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def test_fingerprints_are_computed_anew_and_repeats_under_a_renamed_source_id_go(tenant, owner):
    source = services.create_integration(tenant, owner, name="Feedback", protocol="source_import", source_id="new")
    at = datetime.datetime(2024, 3, 8, 0, 29, tzinfo=datetime.UTC)
    rows = [("old", "Ann", "Great"), ("new", "Ann", "Great"), ("new", "Bob", "Slow")]
    for source_id, name, content in rows:  # as the earlier fingerprint had them: the source_id first
        old = json.dumps([source_id, "2024-03-08 00:29:00", name, content], separators=(",", ":"))
        FeedbackEntry.objects.create(tenant=tenant, integration=source, source_id=source_id, date=at, name=name,
                                     content=content, fingerprint=f"{abs(hash(old)):064d}"[:64])
    try:
        migrate(BEFORE)
        migrate(AFTER)
        kept = list(FeedbackEntry.objects.order_by("id").values_list("source_id", "name", "fingerprint"))
        assert kept == [("old", "Ann", fingerprint("2024-03-08 00:29:00", "Ann", "Great")),
                        ("new", "Bob", fingerprint("2024-03-08 00:29:00", "Bob", "Slow"))]
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())  # back to the latest, for the next tests
