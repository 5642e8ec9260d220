"""Load: many clients sending small valid files at once, in and out of Sandbox Mode.

On the database and broker of the environment (DATABASE_URL, CELERY_BROKER_URL; without
DATABASE_URL a SQLite file of its own, var/bench-load.sqlite3, and a filesystem broker in a
temporary folder), it starts the portal as `make run` does (gunicorn -c python:portal.serving,
one Celery worker with the thread pool and beat embedded), then for LOAD_SECONDS (60) runs
LOAD_CLIENTS (16) clients, each a loop of POSTs of a 5-record JSON file to seed 000's data
endpoint: half to an integration in Sandbox Mode, half to one out of it (processed in arrival
order, each releasing the next). It reports the requests, the errors (anything but a 201), the
latency p50 / p99, how long the queue takes to drain once the clients stop, and the uploads
lost (answered 201, not processed when the drain ends, at most DRAIN_LIMIT seconds).

Last line: `RESULT load_requests=<n> load_errors=<n> load_p99_ms=<ms> load_lost=<n> drain_s=<s>`.
Targets: no error, nothing lost, a drain no longer than the load itself.
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))
import stack  # noqa: E402

CLIENTS = int(os.environ.get("LOAD_CLIENTS", "16"))
SECONDS = float(os.environ.get("LOAD_SECONDS", "60"))
DRAIN_LIMIT = float(os.environ.get("DRAIN_LIMIT", str(max(120.0, 3 * SECONDS))))
TENANT = "load"
POOL = os.environ.get("LOAD_POOL", "threads")  # as bin/run; "prefork" to compare
CONCURRENCY = stack.worker_concurrency()  # as bin/run sets it (WORKERS to change it)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(folder):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1,localhost",
           "MEDIA_ROOT": str(folder / "media")}
    env.setdefault("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'bench-load.sqlite3'}")
    if not env.get("CELERY_BROKER_URL"):
        env.update(CELERY_BROKER_URL="filesystem://", CELERY_BROKER_FOLDER=str(folder / "broker"))
        (folder / "broker").mkdir()
    return env


def setup(env):
    """A tenant of its own with two integrations (one in Sandbox Mode, one out) and their tokens."""
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=BASE_DIR, env=env,
                   check=True)
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from integrations import services
    from portal.models import Membership, Tenant

    tenant, _ = Tenant.objects.get_or_create(slug=TENANT, defaults={"name": "Load"})
    owner, _ = get_user_model().objects.get_or_create(username=f"{TENANT}-admin")
    Membership.objects.get_or_create(tenant=tenant, user=owner, defaults={"role": Membership.Role.OWNER})
    tenant.integrations.all().delete()  # every run starts from nothing
    tokens = {}
    for name, sandbox in (("sandbox", True), ("live", False)):
        integration = services.create_integration(
            tenant, owner, name=f"Load {name}", data_type=f"load-{name}", data_format="json",
            field_keys=["email", "date", "calls"],
            metrics=[{"name": "calls", "source_key": "calls", "aggregation": "sum"}])
        if not sandbox:
            services.set_sandbox(integration, owner, False)
        tokens[f"load-{name}"] = services.regenerate_integration_token(integration, owner)
    return tokens


def start(env, folder, port):
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:portal.serving", "portal.wsgi", "--bind", f"127.0.0.1:{port}",
         "--access-logfile", "/dev/null"],
        cwd=BASE_DIR, env=env, stdout=open(folder / "web.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", f"--pool={POOL}", f"--concurrency={CONCURRENCY}", "--beat",
         "-s", str(folder / "beat-schedule"), "--loglevel=WARNING", "--without-gossip", "--without-mingle"],
        cwd=BASE_DIR, env=env, stdout=open(folder / "worker.log", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/login/", timeout=2).status_code == 200:
                return gunicorn, worker
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start:\n" + (folder / "web.log").read_text()[-2000:])


def client(url, token, stop_at, results, n):
    session = requests.Session()
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    i = 0
    while time.monotonic() < stop_at:
        i += 1
        body = json.dumps([{"email": f"user{(n * 7 + i + k) % 300}@load.example", "date": f"8/{1 + i % 28}/2016",
                            "calls": k} for k in range(5)])
        started = time.monotonic()
        try:
            response = session.post(url, data=body, headers=headers, timeout=30)
            status, upload = response.status_code, response.json().get("id") if response.status_code == 201 else None
        except (requests.RequestException, ValueError) as exc:
            status, upload = type(exc).__name__, None
        results.append((time.monotonic() - started, status, upload))


def main():
    folder = Path(tempfile.mkdtemp(prefix="bench-load-"))
    env = environment(folder)
    tokens = setup(env)
    from uploads.models import Upload

    port = free_port()
    gunicorn, worker = start(env, folder, port)
    try:
        # Warm both processes (imports, connections) before the clock starts.
        for data_type, token in tokens.items():
            requests.post(f"http://127.0.0.1:{port}/api/v1/data/{data_type}/", data='[{"email": "w@x.com", '
                          '"date": "8/1/2016", "calls": 1}]', headers={"Authorization": f"Token {token}",
                                                                    "Content-Type": "application/json"}, timeout=30)
        results = []
        stop_at = time.monotonic() + SECONDS
        threads = []
        for n in range(CLIENTS):
            data_type = list(tokens)[n % 2]
            url = f"http://127.0.0.1:{port}/api/v1/data/{data_type}/"
            threads.append(threading.Thread(target=client, args=(url, tokens[data_type], stop_at, results, n)))
        load_started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        load_seconds = time.monotonic() - load_started

        accepted = [upload for _, status, upload in results if upload is not None]
        pending = Upload.objects.filter(pk__in=accepted).exclude(status="processed")
        drain_started = time.monotonic()
        while pending.exists() and time.monotonic() - drain_started < DRAIN_LIMIT:
            time.sleep(0.2)
        drain = time.monotonic() - drain_started
        lost = Upload.objects.filter(pk__in=accepted).exclude(status="processed").count()
        by_status = {}
        for _, status, _ in results:
            by_status[status] = by_status.get(status, 0) + 1
    finally:
        for process in (gunicorn, worker):
            os.killpg(process.pid, signal.SIGTERM)
        for process in (gunicorn, worker):
            process.wait(timeout=30)

    latencies = sorted(seconds for seconds, _, _ in results)
    errors = sum(count for status, count in by_status.items() if status != 201)
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    database = env["DATABASE_URL"].split(":", 1)[0]
    broker = env["CELERY_BROKER_URL"].split(":", 1)[0]
    print(f"stack: {database}, {broker} broker; gunicorn {os.environ.get('WEB_WORKERS', '2')} workers × "
          f"{os.environ.get('WEB_THREADS', '32')} threads; one worker, pool {POOL}, concurrency {CONCURRENCY}")
    print(f"load: {CLIENTS} clients × {load_seconds:.0f} s, half in Sandbox Mode, half out of it")
    print(f"requests {len(results)} ({len(results) / load_seconds:.0f}/s), answers {by_status}")
    print(f"latency p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    print(f"drain {drain:.1f} s after the clients stopped; lost {lost} of {len(accepted)} accepted")
    print(f"RESULT load_requests={len(results)} load_errors={errors} load_p99_ms={p99:.0f} load_lost={lost} "
          f"drain_s={drain:.1f}")
    return 0 if errors == 0 and lost == 0 and drain <= load_seconds else 1


if __name__ == "__main__":
    sys.exit(main())
