"""Inbound intake benchmark: a 15 MB CSV through a real web server and a real worker.

Measures, in one run, on the database and broker of the environment (DATABASE_URL,
CELERY_BROKER_URL; the embedded SQLite and filesystem broker when unset):

  (a) pandas.read_csv of the file, in this process;
  (b) POST of the file to the demo `activity` integration, until the 201, through gunicorn;
  (c) POST until the upload is processed by a Celery worker process;
  (d) peak memory (VmHWM) of the gunicorn workers and of the Celery worker processes;
  (e) on PostgreSQL only: a plain COPY of the same CSV into a bare temporary table;
  (f) the same file sent again (every value replaced), and meanwhile small POSTs to the
      `calls` integration one after another: how long another request waits while a big
      upload is processed (on SQLite, processing holds the database's one write lock).

Its last line is `RESULT accept_vs_read_csv=<b/a> complete_vs_copy=<c/e or nan> worker_peak_mb=<d>
small_post_during_processing_max_ms=<f>`. Targets on PostgreSQL + Redis: c/e <= 2, b/a <= 5,
worker peak <= 250 MB; on SQLite, f of a couple of seconds at most.

Run it with `make bench` (all benchmarks) or `.venv/bin/python bench/bench_intake.py`. Without
DATABASE_URL it uses a SQLite file of its own, var/bench.sqlite3. It works in a tenant of its
own, `bench`, whose activity integration it purges first; its files and broker folder are
temporary.
"""

import datetime
import io
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

TENANT = "bench"  # its own tenant, so that the demo tenant's tokens stay valid
LIMIT = 15 * 1024 * 1024  # seed 000's 15 MB; the file stays just under it
USERS = 500
DAYS = 30
FIRST_DAY = datetime.date(2026, 11, 10)
SEED = 20161608  # the same file every run


# --- the file ------------------------------------------------------------------------------

def make_csv(limit=LIMIT):
    """A CSV as the demo `activity` integration expects, as close under `limit` bytes as rows allow."""
    rng = random.Random(SEED)
    emails = [f"user{n}@example.com" for n in range(1, USERS + 1)]
    dates = [(FIRST_DAY + datetime.timedelta(days=d)) for d in range(DAYS)]
    dates = [f"{d.month}/{d.day}/{d.year}" for d in dates]  # M/D/YYYY, as in the seed's 8/16/2016
    out = io.StringIO()
    header = "email,date,calls,talk_minutes,deals\n"
    out.write(header)
    size = len(header)
    rows = 0
    while True:
        row = (f"{rng.choice(emails)},{rng.choice(dates)},{rng.randint(0, 120)},"
               f"{rng.randint(0, 72000) / 100:.2f},{rng.randint(0, 5)}\n")
        if size + len(row) >= limit:
            break
        out.write(row)
        size += len(row)
        rows += 1
    data = out.getvalue().encode()
    assert len(data) < limit
    return data, rows


# --- processes (bench/stack.py; the names stay here for whoever imported them from this module) ---

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import descendants, free_port, manage, peak_mb, run_worker_args, start, stop, wait_for_http  # noqa: E402,F401,I001

# --- measurements --------------------------------------------------------------------------

def post(endpoint, token, data, content_type="text/csv"):
    import requests

    return requests.post(endpoint, data=data, timeout=600,
                         headers={"Authorization": f"Token {token}", "Content-Type": content_type})


def wait_until_done(upload_id, worker, log_path, timeout=1800):
    """Poll the upload's status in the database (every 5 ms) until the worker is done with it."""
    from uploads.models import Upload

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Upload.objects.filter(pk=upload_id).values_list("status", flat=True).first()
        if status in (Upload.Status.PROCESSED, Upload.Status.FAILED):
            return time.perf_counter(), Upload.objects.get(pk=upload_id)
        if worker.poll() is not None:
            raise SystemExit(f"the Celery worker exited:\n{Path(log_path).read_text()[-3000:]}")
        time.sleep(0.005)
    raise SystemExit(f"upload {upload_id} was not processed within {timeout}s")


def timed_read_csv(path, repeat=3):
    import pandas as pd

    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        pd.read_csv(path)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def timed_copy(database_url, path):
    """A plain COPY of the CSV into a bare temporary table: the floor for writing these rows."""
    import psycopg

    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1)) as conn:
        conn.execute("SET datestyle = 'ISO, MDY'")
        conn.execute("CREATE TEMPORARY TABLE bench_copy "
                     "(email text, date date, calls integer, talk_minutes double precision, deals integer)")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cursor, open(path, "rb") as f:
            with cursor.copy("COPY bench_copy FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                while chunk := f.read(1024 * 1024):
                    copy.write(chunk)
        conn.commit()
        elapsed = time.perf_counter() - started
        rows = conn.execute("SELECT count(*) FROM bench_copy").fetchone()[0]
    return elapsed, rows


def small_posts_while_processing(endpoint, token, upload_id, worker, log_path):
    """Small POSTs one after another until the upload is processed: their latencies, in seconds."""
    from uploads.models import Upload

    body = b'[{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"}]'
    latencies = []
    while Upload.objects.filter(pk=upload_id, status__in=["queued", "processing"]).exists():
        started = time.perf_counter()
        response = post(endpoint, token, body, content_type="application/json")
        latencies.append(time.perf_counter() - started)
        if response.status_code != 201:
            raise SystemExit(f"a small POST answered {response.status_code}: {response.text[:300]}")
        if worker.poll() is not None:
            raise SystemExit(f"the Celery worker exited:\n{Path(log_path).read_text()[-3000:]}")
    return latencies


def main():
    workdir = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    # On the embedded defaults, a SQLite file of its own: a `make run` or another process
    # writing to the development database would otherwise lock the bench out.
    (BASE_DIR / "var").mkdir(exist_ok=True)
    env.setdefault("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'bench.sqlite3'}")
    env["MEDIA_ROOT"] = str(workdir / "media")  # the bench's stored files go with it
    env["CELERY_BROKER_FOLDER"] = str(workdir / "broker")  # used by the filesystem broker only
    env["CELERY_TASK_ALWAYS_EAGER"] = "false"
    env.setdefault("LOG_LEVEL", "WARNING")
    (workdir / "broker").mkdir()
    os.environ.update(env)
    database_url = env.get("DATABASE_URL", "")
    on_postgres = database_url.startswith(("postgres://", "postgresql://", "pgsql://"))
    broker = env.get("CELERY_BROKER_URL", "filesystem://")

    web = worker = None
    try:
        database = "PostgreSQL" if on_postgres else database_url.split(":")[0]  # never the URL: it may hold a password
        print(f"database: {database}; broker: {broker.split('://')[0]}; {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f} (other work on the machine slows every figure)", flush=True)
        manage(env, "migrate", "--noinput")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        demo = json.loads(manage(env, "demo", "--json", "--tenant", TENANT, "--base-url", base))
        activity = next(i for i in demo["integrations"] if i.get("data_type") == "activity")
        endpoint, token = activity["endpoint"], activity["auth_token"]
        calls = next(i for i in demo["integrations"] if i.get("data_type") == "calls")

        import django

        django.setup()
        from django.contrib.auth import get_user_model

        from integrations.models import Integration
        from uploads.purge import purge_integration

        # Start from an empty integration in Sandbox Mode (where nothing waits for an earlier upload
        # another run left behind), so that every run writes the same values anew.
        from integrations import services

        actor = get_user_model().objects.get(username=demo["username"])
        integration = Integration.objects.get(tenant__slug=TENANT, key="activity", direction="inbound")
        integration = services.set_sandbox(integration, actor, True)
        purge_integration(integration, actor)
        if on_postgres:
            # What autovacuum does in production (this machine's PostgreSQL runs without it): without
            # it every run's purged values stay in the indexes, and each run writes slower than the last.
            from django.db import connection

            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE uploads_metricvalue")
                cursor.execute("VACUUM ANALYZE uploads_upload")

        data, rows = make_csv()
        csv_path = workdir / "activity.csv"
        csv_path.write_bytes(data)
        print(f"file: {len(data):,} bytes ({len(data) / 2**20:.2f} MiB), {rows:,} rows, {USERS} users, "
              f"{DAYS} days", flush=True)

        a = timed_read_csv(csv_path)
        print(f"(a) pandas.read_csv: {a:.3f} s (median of 3)", flush=True)

        web_log, worker_log = workdir / "gunicorn.log", workdir / "celery.log"
        # One web worker and one worker child, so that the warm-up below warms the very processes
        # that are timed: a process's first request pays for imports (pandas alone takes 0.3-0.5 s).
        web = start(env, ["gunicorn", "portal.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                          "--threads", "4", "--timeout", "300"], open(web_log, "w"))
        # The worker as bin/run starts it (its pool), with one slot: the warm-up warms the one that is timed.
        worker = start(env, [*(a for a in run_worker_args() if not a.startswith("--concurrency")), "--concurrency=1",
                             "--without-gossip", "--without-mingle"], open(worker_log, "w"))
        wait_for_http(f"{base}/login/", web, web_log)

        # Warm-up: a small file through both, so that imports and connections are not timed.
        small = b"\n".join(data.split(b"\n", 201)[:201]) + b"\n"
        response = post(endpoint, token, small)
        if response.status_code != 201:
            raise SystemExit(f"warm-up POST answered {response.status_code}: {response.text[:500]}")
        wait_until_done(response.json()["id"], worker, worker_log, timeout=120)

        # The floor under (b): the same body sent and read whole, then refused for its Content-Type
        # before any parsing (and, all or nothing, nothing stored).
        started = time.perf_counter()
        response = post(endpoint, token, data, content_type="application/json")
        transport = time.perf_counter() - started
        print(f"    (b0) the same POST refused once read (wrong Content-Type, HTTP {response.status_code}): "
              f"{transport:.3f} s", flush=True)

        started = time.perf_counter()
        response = post(endpoint, token, data)
        accepted = time.perf_counter()
        if response.status_code != 201:
            raise SystemExit(f"POST answered {response.status_code}: {response.text[:500]}")
        body = response.json()
        b = accepted - started
        print(f"(b) POST to 201: {b:.3f} s  ({body})", flush=True)

        done, upload = wait_until_done(body["id"], worker, worker_log)
        c = done - started
        print(f"(c) POST to processing complete: {c:.3f} s  (status {upload.status}, "
              f"{upload.records:,} records, {upload.values_written:,} values written)", flush=True)
        if upload.started_at and upload.finished_at:
            queued = (upload.started_at - upload.created_at).total_seconds()
            print(f"    of which queued {queued:.3f} s, processing in the worker "
                  f"{upload.duration_seconds:.3f} s", flush=True)
        if upload.status != "processed":
            print(f"    errors: {upload.errors[:3]}", flush=True)

        web_peaks = {pid: peak_mb(pid) for pid in descendants(web.pid)}
        worker_peaks = {pid: peak_mb(pid) for pid in [worker.pid, *descendants(worker.pid)]}
        web_peak, worker_peak = max(web_peaks.values(), default=0), max(worker_peaks.values(), default=0)
        print(f"(d) peak memory (VmHWM): web {web_peak:.0f} MB (gunicorn workers: "
              f"{', '.join(f'{v:.0f}' for v in web_peaks.values())}); worker {worker_peak:.0f} MB "
              f"(celery main and children: {', '.join(f'{v:.0f}' for v in worker_peaks.values())})", flush=True)

        e = math.nan
        if on_postgres:
            e, copied = timed_copy(database_url, csv_path)
            print(f"(e) COPY into a bare temporary table: {e:.3f} s ({copied:,} rows)", flush=True)
        else:
            print("(e) COPY: skipped (DATABASE_URL is not PostgreSQL)", flush=True)

        # (f) the same file again (every value replaced), and small POSTs meanwhile
        response = post(endpoint, token, data)
        if response.status_code != 201:
            raise SystemExit(f"POST answered {response.status_code}: {response.text[:500]}")
        again = response.json()["id"]
        small = small_posts_while_processing(calls["endpoint"], calls["auth_token"], again, worker, worker_log)
        _, upload = wait_until_done(again, worker, worker_log)
        f = max(small, default=math.nan)
        print(f"(f) the file sent again ({upload.status}, processing {upload.duration_seconds or math.nan:.3f} s in "
              f"the worker); {len(small)} small POSTs meanwhile: slowest {f * 1000:.0f} ms, median "
              f"{statistics.median(small) * 1000 if small else math.nan:.0f} ms", flush=True)

        print(f"load average at the end: {os.getloadavg()[0]:.1f}", flush=True)
        print(f"targets (PostgreSQL): b/a <= 5: {b / a:.2f}; c/e <= 2: {c / e:.2f}; "
              f"worker peak <= 250 MB: {worker_peak:.0f}", flush=True)
        print(f"RESULT accept_vs_read_csv={b / a:.2f} complete_vs_copy={c / e:.2f} worker_peak_mb={worker_peak:.0f} "
              f"small_post_during_processing_max_ms={f * 1000:.0f}", flush=True)
    finally:
        stop(web)
        stop(worker)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
