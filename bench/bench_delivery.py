"""Outbound delivery: files per second that reach a vendor with real latency, and TLS handshakes per file.

The vendor (bench/vendor.py) is an HTTPS server on loopback that answers 201 after 50 ms,
with a self-signed certificate that the worker trusts through PORTAL_OUTBOUND_CA_BUNDLE
(its sessions read nothing from the environment) and whose address the destination guard
allows through PORTAL_OUTBOUND_ALLOWED_NETWORKS. In one run, on the database and broker of
the environment:

  (a) baseline: a thread pool of N threads, one plain requests.Session each (keep-alive),
      POSTs the 1,000 files, with the same headers as the portal sends;
  (b) the portal: the 1,000 files are accepted by the intake of an outbound integration out of
      Sandbox Mode while no worker runs (their dispatches wait in the broker), then the Celery
      worker starts as `make run` starts it (N = its concurrency, bin/run) and delivers them;
      its rate is 1,000 over the time from the first attempt's claim to the last delivery;
  (c) for the record: requests.post per file, no session (a TCP and TLS handshake per file),
      on 200 files.

For each, the vendor counts requests and the TLS handshakes that carried one.
Last line: `RESULT delivery_throughput_ratio=<b/a> portal_files_per_s=<b> session_files_per_s=<a>
handshakes_per_file=<b's>`. Target: b/a ≥ 0.9.
"""

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stack  # noqa: E402

TENANT = "bench"
FILES = int(os.environ.get("BENCH_DELIVERY_FILES", "1000"))
UNPOOLED_FILES = 200
VENDOR_DELAY = 0.05
KEY = "bench-vendor"


def certificate(folder):
    """A self-signed certificate for localhost and 127.0.0.1 (cert, key paths)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = Path(folder) / "vendor.pem", Path(folder) / "vendor.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def files(count):
    """Small JSON files (about 1 KB), each different."""
    out = []
    for n in range(count):
        records = [{"email": f"user{(n * 7 + i) % 500}@example.com", "date": "11/23/2026", "calls": str((n + i) % 40)}
                   for i in range(14)]
        out.append(json.dumps(records).encode())
    return out


def vendor_stats(base, ca):
    import requests

    return requests.get(f"{base}/stats", verify=ca, timeout=10).json()


def vendor_reset(base, ca):
    import requests

    requests.post(f"{base}/reset", verify=ca, timeout=10)


def plain_sessions(url, bodies, threads, ca, token, pooled=True):
    """Files per second through a pool of `threads` threads; one requests.Session per thread (pooled)
    or a bare requests.post per file."""
    import threading

    import requests

    local = threading.local()
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json", "Accept": "application/json"}

    def send(body):
        if pooled:
            if not hasattr(local, "session"):
                local.session = requests.Session()
            response = local.session.post(url, data=body, headers=headers, verify=ca, timeout=30)
        else:
            response = requests.post(url, data=body, headers=headers, verify=ca, timeout=30)
        if response.status_code != 201:
            raise SystemExit(f"the vendor answered {response.status_code}")

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, bodies))
    return len(bodies) / (time.perf_counter() - started)


def main():
    workdir = Path(tempfile.mkdtemp(prefix="portal-bench-delivery-"))
    cert, key = certificate(workdir)
    port = stack.free_port()
    env = stack.environment(workdir, PORTAL_OUTBOUND_ALLOWED_NETWORKS="127.0.0.0/8,::1/128",
                            PORTAL_OUTBOUND_CA_BUNDLE=cert)
    vendor = worker = None
    try:
        concurrency = stack.worker_concurrency()
        print(f"{stack.describe(env)}; worker concurrency {concurrency} (bin/run); the vendor answers after "
              f"{VENDOR_DELAY * 1000:.0f} ms", flush=True)
        stack.demo(env, TENANT, "http://127.0.0.1:8000")
        vendor = subprocess.Popen([sys.executable, str(Path(__file__).with_name("vendor.py")), str(port), cert, key,
                                   str(VENDOR_DELAY)], stdout=subprocess.PIPE, text=True, start_new_session=True)
        if vendor.stdout.readline().strip() != "ready":
            raise SystemExit("the vendor did not start")
        base = f"https://localhost:{port}"
        url = f"{base}/api/v1/data/calls/"

        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.db.models import Max, Min

        from integrations import services
        from integrations.models import Integration
        from portal.models import Tenant
        from uploads.intake import receive
        from uploads.models import Dispatch, Upload

        tenant = Tenant.objects.get(slug=TENANT)
        actor = get_user_model().objects.get(username=f"{TENANT}-admin")
        token = "bench-vendor-token"
        integration = Integration.objects.filter(tenant=tenant, direction="outbound", key=KEY).first()
        if integration is None:
            integration = services.create_integration(
                tenant, actor, name="Bench vendor", direction="outbound", protocol="data_integration", data_type=KEY,
                data_format="json", field_keys=["email", "date", "calls"], endpoint_url=url,
                credentials={"auth_token": token})
        else:
            integration = services.update_integration(integration, actor, {"endpoint_url": url},
                                                       credentials={"auth_token": token})
        integration = services.set_sandbox(integration, actor, False)
        bodies = files(FILES)

        # (a) the baseline: a plain session pool of the same concurrency
        vendor_reset(base, cert)
        plain_sessions(url, bodies[:20], concurrency, cert, token)  # warm-up
        vendor_reset(base, cert)
        a = plain_sessions(url, bodies, concurrency, cert, token)
        seen = vendor_stats(base, cert)
        print(f"(a) {concurrency} threads, a requests.Session each: {a:.1f} files/s; "
              f"{seen['handshakes'] / seen['posts']:.3f} TLS handshakes per file ({seen['posts']} files)", flush=True)

        # (b) the portal: accepted with no worker running, then delivered by the worker
        def accept(some):
            return [receive(integration, body, channel="api", content_type="application/json",
                            submitted_via="bench").pk for body in some]

        log_path = workdir / "celery.log"
        warm = accept(bodies[:2 * concurrency])
        worker = stack.start_worker(env, open(log_path, "w"))
        stack.wait_for(lambda: not Upload.objects.filter(pk__in=warm, status="sending").exists(), 120,
                       "warm-up delivery", worker, log_path, every=0.05)
        stack.stop(worker)
        vendor_reset(base, cert)
        uploads = accept(bodies)
        print(f"    {FILES} files accepted, their dispatches wait in the broker; {stack.load()}", flush=True)
        worker = stack.start_worker(env, open(log_path, "a"))
        stack.wait_for(lambda: not Upload.objects.filter(pk__in=uploads, status="sending").exists(), 600,
                       "delivery", worker, log_path, every=0.1)
        delivered = Upload.objects.filter(pk__in=uploads, status="delivered").count()
        span = Dispatch.objects.filter(upload_id__in=uploads).aggregate(first=Min("claimed_at"), last=Max("finished_at"))
        b = FILES / (span["last"] - span["first"]).total_seconds()
        seen = vendor_stats(base, cert)
        handshakes = seen["handshakes"] / max(1, seen["posts"])
        print(f"(b) the portal's worker: {b:.1f} files/s; {handshakes:.3f} TLS handshakes per file "
              f"({delivered} of {FILES} delivered, the vendor answered {seen['posts']} requests, "
              f"{seen['authorized']} with the token)", flush=True)
        if delivered != FILES or seen["posts"] != FILES:
            raise SystemExit("not every file was delivered exactly once")
        stack.stop(worker)

        # (c) for the record: no session, a handshake per file
        vendor_reset(base, cert)
        c = plain_sessions(url, bodies[:UNPOOLED_FILES], concurrency, cert, token, pooled=False)
        seen = vendor_stats(base, cert)
        print(f"(c) {concurrency} threads, requests.post per file: {c:.1f} files/s; "
              f"{seen['handshakes'] / seen['posts']:.3f} TLS handshakes per file ({seen['posts']} files)", flush=True)

        print(f"{stack.load()}; target b/a >= 0.9: {b / a:.2f}", flush=True)
        print(f"RESULT delivery_throughput_ratio={b / a:.2f} portal_files_per_s={b:.1f} session_files_per_s={a:.1f} "
              f"handshakes_per_file={handshakes:.3f}", flush=True)
    finally:
        stack.stop(worker)
        if vendor is not None:
            vendor.terminate()
            vendor.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
