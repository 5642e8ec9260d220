"""Outbound dispatch overhead: 200 dispatches through the portal's machinery versus 200 plain
requests.post calls, to the same local HTTP server, in one run.

    .venv/bin/python bench/bench_dispatch.py [--count 200]

The dispatches go through integrations.outbound.run_attempt, the function the Celery task
calls: claim, destination check, vault, stored file, one requests.Session, capped read,
redacted CallLog row, final state. The files are first accepted with send_upload (timed
apart). Uses the configured database (DATABASE_URL, else the embedded SQLite), migrated if
needed, with a throwaway tenant deleted at the end; queued tasks go to an in-memory broker
that nothing consumes, so a running worker cannot take them. Last line:
RESULT dispatch_overhead=<dispatch wall time / plain wall time>.
"""

import argparse
import json
import multiprocessing
import os
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ["CELERY_BROKER_URL"] = "memory://localhost/"
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
os.environ["PORTAL_OUTBOUND_ALLOWED_NETWORKS"] = "127.0.0.1/32"
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("DEBUG", "false")  # as deployed: with DEBUG on, Django keeps every query in memory

import django  # noqa: E402

django.setup()

import requests  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from integrations import services  # noqa: E402
from integrations.models import CallLog, Dispatch  # noqa: E402
from integrations.outbound import run_attempt, send_upload  # noqa: E402
from portal.models import Tenant  # noqa: E402
from uploads.models import Upload  # noqa: E402

BLOCK = 20
BODY = json.dumps([{"email": f"user{i}@example.com", "date": "8/16/2016", "calls": str(i)} for i in range(5)]).encode()


class Vendor(BaseHTTPRequestHandler):
    """A seed-000 vendor that accepts everything."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        payload = b'{"id": 1, "records": 5, "status": "queued"}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    count = parser.parse_args().count

    call_command("migrate", verbosity=0)
    # The vendor runs in a process of its own, as a vendor does: in this one, its threads
    # would compete for the interpreter with whichever side is being measured.
    server = ThreadingHTTPServer(("127.0.0.1", 0), Vendor)
    vendor = multiprocessing.get_context("fork").Process(target=server.serve_forever, daemon=True)
    vendor.start()
    server.socket.close()  # the vendor process has its own copy
    url = f"http://127.0.0.1:{server.server_address[1]}/api/v1/data/bench/"

    tenant = Tenant.objects.create(slug=f"bench-{uuid.uuid4().hex[:8]}", name="Dispatch benchmark (throwaway)")
    try:
        integration = services.create_integration(
            tenant, None, name="Bench vendor", direction="outbound", data_type="bench", data_format="json",
            field_keys=["email", "date", "calls"], endpoint_url=url, credentials={"auth_token": uuid.uuid4().hex},
        )
        services.set_sandbox(integration, None, False)
        headers = {"Authorization": "Token plain-secret", "Content-Type": "application/json"}

        started = time.perf_counter()
        uploads = [send_upload(integration, BODY, content_type="application/json", channel="api",
                               submitted_via="bench") for _ in range(count + 10)]
        accept_s = time.perf_counter() - started
        dispatches = list(Dispatch.objects.filter(upload__in=uploads).order_by("id").values_list("id", flat=True))

        # Warm both paths (imports, connection to the DB, first TCP connections).
        for dispatch_id in dispatches[:10]:
            run_attempt(dispatch_id, 1)
        for _ in range(10):
            requests.post(url, data=BODY, headers=headers, timeout=(5, 30))

        # Alternate blocks of each, so that a busy moment of the machine weighs on both alike.
        plain_s = dispatch_s = 0.0
        todo = dispatches[10:]
        for block in range(0, count, BLOCK):
            started = time.perf_counter()
            for _ in todo[block:block + BLOCK]:
                response = requests.post(url, data=BODY, headers=headers, timeout=(5, 30))
                assert response.status_code == 201
            plain_s += time.perf_counter() - started
            started = time.perf_counter()
            for dispatch_id in todo[block:block + BLOCK]:
                run_attempt(dispatch_id, 1)
            dispatch_s += time.perf_counter() - started

        delivered = Upload.objects.filter(pk__in=[u.pk for u in uploads], status=Upload.Status.DELIVERED).count()
        calls = CallLog.objects.filter(tenant=tenant).count()
        assert delivered == count + 10 and calls == count + 10, (delivered, calls)
    finally:
        stored = list(Upload.objects.filter(tenant=tenant).exclude(file="").values_list("file", flat=True))
        tenant.delete()
        storage = Upload._meta.get_field("file").storage
        for name in stored:
            storage.delete(name)
        vendor.terminate()

    print(f"database: {connection.vendor}")
    print(f"accept (send_upload, check + store + queue): {count + 10} in {accept_s:.3f} s, "
          f"{accept_s / (count + 10) * 1000:.2f} ms each")
    print(f"plain requests.post: {count} in {plain_s:.3f} s, {plain_s / count * 1000:.2f} ms each")
    print(f"dispatch (run_attempt, with call log): {count} in {dispatch_s:.3f} s, {dispatch_s / count * 1000:.2f} ms each")
    print(f"RESULT dispatch_overhead={dispatch_s / plain_s:.2f}")


if __name__ == "__main__":
    main()
