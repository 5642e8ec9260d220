"""Inbound intake benchmark: a 15 MB CSV through a real web server and a real worker.

Measures, in one run, on the database and broker of the environment (DATABASE_URL,
CELERY_BROKER_URL; the embedded SQLite and filesystem broker when unset):

  (a) pandas.read_csv of the file, in this process;
  (b) POST of the file to the demo `activity` integration, until the 201, through gunicorn;
  (c) POST until the upload is processed by a Celery worker process;
  (d) peak memory (VmHWM) of the gunicorn workers and of the Celery worker processes;
  (e) on PostgreSQL only: a plain COPY of the same CSV into a bare temporary table.

Its last line is `RESULT accept_vs_read_csv=<b/a> complete_vs_copy=<c/e or nan> worker_peak_mb=<d>`.
Targets on PostgreSQL: c/e <= 3, b/a <= 10, worker peak <= 400 MB.

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
import signal
import socket
import statistics
import subprocess
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


# --- processes -----------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env, *args):
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def start(env, args, log):
    """A child in its own process group, so that stopping it stops its own children too."""
    return subprocess.Popen([sys.executable, "-m", *args], cwd=BASE_DIR, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(process):
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def descendants(pid):
    """pid's children, grandchildren … (from /proc), without pid itself."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def peak_mb(pid):
    """VmHWM: the most resident memory the process ever had, in MB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def wait_for_http(url, process, log_path, timeout=60):
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited:\n{Path(log_path).read_text()[-3000:]}")
        try:
            requests.get(url, timeout=30)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"gunicorn did not answer on {url} within {timeout}s")


# --- measurements --------------------------------------------------------------------------

def post(endpoint, token, data, content_type="text/csv"):
    import requests

    return requests.post(endpoint, data=data, timeout=600,
                         headers={"Authorization": f"Token {token}", "Content-Type": content_type})


def wait_until_done(upload_id, worker, log_path, timeout=1800):
    """Poll the upload's status in the database until the worker is done with it."""
    from uploads.models import Upload

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Upload.objects.filter(pk=upload_id).values_list("status", flat=True).first()
        if status in (Upload.Status.PROCESSED, Upload.Status.FAILED):
            return time.perf_counter(), Upload.objects.get(pk=upload_id)
        if worker.poll() is not None:
            raise SystemExit(f"the Celery worker exited:\n{Path(log_path).read_text()[-3000:]}")
        time.sleep(0.02)
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
        activity = next(i for i in demo["integrations"] if i["data_type"] == "activity")
        endpoint, token = activity["endpoint"], activity["auth_token"]

        import django

        django.setup()
        from django.contrib.auth import get_user_model

        from integrations.models import Integration
        from uploads.purge import purge_integration

        # Start from an empty integration, so that every run writes the same values anew.
        integration = Integration.objects.get(tenant__slug=TENANT, data_type="activity", direction="inbound")
        if integration.sandbox:
            purge_integration(integration, get_user_model().objects.get(username=demo["username"]))

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
        worker = start(env, ["celery", "-A", "portal", "worker", "--loglevel=WARNING", "--concurrency=1",
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

        print(f"load average at the end: {os.getloadavg()[0]:.1f}", flush=True)
        print(f"targets (PostgreSQL): b/a <= 10: {b / a:.2f}; c/e <= 3: {c / e:.2f}; "
              f"worker peak <= 400 MB: {worker_peak:.0f}", flush=True)
        print(f"RESULT accept_vs_read_csv={b / a:.2f} complete_vs_copy={c / e:.2f} worker_peak_mb={worker_peak:.0f}",
              flush=True)
    finally:
        stop(web)
        stop(worker)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
