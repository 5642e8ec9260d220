"""File Upload API benchmark (reference 003): 5 GB through the portal, both ways, and a 1 GB CSV
processed into a data integration. Real processes, as bin/run starts them: gunicorn
(`-c python:portal.serving`: gthread, 2 workers) and a Celery worker (prefork, 2 children).

Measures, in one run, on the database and broker of the environment (DATABASE_URL,
CELERY_BROKER_URL; without DATABASE_URL a SQLite file of its own, var/bench-file-upload.sqlite3):

  (a) baseline: `dd bs=1M conv=fsync` of the generated file to the same disk (the PUT's file is
      on disk, fsync'ed, before it is answered: the same work for the disk);
  (b) `curl -XPUT <url> --upload-file <5 GB>` to the embedded default, until its answer;
      the web workers' peak RSS growth during it (VmHWM reset through /proc/<pid>/clear_refs);
  (c) gunicorn's gthread worker and a PUT longer than its --timeout (5 s, at 20 MB/s: 10 s);
  (d) the same 5 GB sent outbound by the worker to the portal's own File Upload API: the
      worker's peak RSS (and the time the intake takes to take the file in first);
  (e) a 1 GB CSV sent with a token linked to the demo's `activity` integration: processed in
      pieces by the worker; its peak RSS and the time.

RESULT lines: `RESULT put_peak_mb=… put_vs_disk=…` (goals ≤ 100 and ≤ 2), `RESULT
gthread_long_put=ok|timed_out`, `RESULT outbound_worker_peak_mb=…`, `RESULT linked_csv_worker_peak_mb=…`
(goal ≤ 400), and last, all of them on one line. Checks free disk first: with less than 3 × 5 GB
(and the 1 GB CSV) free, the big file is scaled down, and it says so.

Run it with `make bench` (all benchmarks) or `.venv/bin/python bench/bench_file_upload.py`;
`BENCH_FILE_GB=1 BENCH_CSV_GB=0.1` send less, for a quick run. Its files are in a temporary folder,
deleted at the end.
"""

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from stack import descendants, free_port, manage, start  # shared with the other benchmarks

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

TENANT = "bench-files"
GIB = 1024 ** 3
FILE_BYTES = int(float(os.environ.get("BENCH_FILE_GB", "5")) * GIB)
CSV_BYTES = int(float(os.environ.get("BENCH_CSV_GB", "1")) * GIB)
USERS, DAYS = 500, 90


# --- processes (as bench_intake.py) ------------------------------------------------------------







def stop(process):
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()




def status_mb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Peak:
    """The most resident memory of some processes over a stretch of time: their peak (VmHWM) is
    reset at the start (clear_refs), and their RSS is also sampled every 50 ms (in case the reset
    is not allowed)."""

    def __init__(self, pids):
        self.pids = list(pids)
        self.before = {pid: status_mb(pid, "VmRSS") for pid in self.pids}
        self.sampled = dict(self.before)
        self.reset = True
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                self.reset = False
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self):
        while self.running:
            for pid in self.pids:
                self.sampled[pid] = max(self.sampled[pid], status_mb(pid, "VmRSS"))
            time.sleep(0.05)

    def stop(self):
        self.running = False
        self.thread.join()
        peaks = {pid: max(self.sampled[pid], status_mb(pid, "VmHWM") if self.reset else 0) for pid in self.pids}
        growth = {pid: peaks[pid] - self.before[pid] for pid in self.pids}
        return peaks, growth


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


# --- files ------------------------------------------------------------------------------------

def make_file(path, size):
    """`size` bytes of incompressible data (a random MB written again and again, each time with
    its own counter), flushed to the disk so that its writeback does not fall into the timings."""
    block = bytearray(os.urandom(1024 * 1024))
    with open(path, "wb") as f:
        written, n = 0, 0
        while written < size:
            block[:8] = n.to_bytes(8, "little")
            chunk = bytes(block[:min(len(block), size - written)])
            f.write(chunk)
            written += len(chunk)
            n += 1
        f.flush()
        os.fsync(f.fileno())


def make_csv(path, size):
    """A CSV for the demo's activity integration: a 16 MB block of random rows, repeated to `size`."""
    rng = random.Random(20161608)
    dates = [f"{1 + d // 28 % 12}/{1 + d % 28}/2026" for d in range(DAYS)]
    rows, length = [], 0
    while length < 16 * 1024 * 1024:
        rows.append(f"user{rng.randint(1, USERS)}@example.com,{rng.choice(dates)},{rng.randint(0, 120)},"
                    f"{rng.randint(0, 72000) / 100:.2f},{rng.randint(0, 5)}\n")
        length += len(rows[-1])
    block = "".join(rows).encode()
    with open(path, "wb") as f:
        f.write(b"email,date,calls,talk_minutes,deals\n")
        written = 0
        while written + len(block) <= size:
            f.write(block)
            written += len(block)
        f.flush()
        os.fsync(f.fileno())
    return written // len(block) * len(rows)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def timed_dd(source, target):
    started = time.perf_counter()
    subprocess.run(["dd", f"if={source}", f"of={target}", "bs=1M", "conv=fsync"], check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    os.remove(target)
    return elapsed


# --- the two steps ----------------------------------------------------------------------------

def step_one(base, token, filename):
    import requests

    response = requests.post(f"{base}/api/v1/file-upload/", json={"filename": filename},
                             headers={"Auth-Api-Token": token}, timeout=60)
    if response.status_code != 200:
        raise SystemExit(f"step 1 answered {response.status_code}: {response.text[:500]}")
    return response.json()["url"]


def curl_put(url, path, limit_rate=None):
    """The seed's step 2: (seconds, HTTP status, answer)."""
    args = ["curl", "-s", "-XPUT", url, "--upload-file", str(path), "-w", "\n%{http_code}"]
    if limit_rate:
        args[1:1] = ["--limit-rate", limit_rate]
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    body, _, status = done.stdout.rpartition("\n")
    return elapsed, int(status or 0), body


def wait_for_upload(query, statuses, worker, log_path, timeout=3600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        upload = query().first()
        if upload is not None and upload.status in statuses:
            return upload
        if worker.poll() is not None:
            raise SystemExit(f"the Celery worker exited:\n{Path(log_path).read_text()[-3000:]}")
        time.sleep(0.2)
    raise SystemExit(f"no upload reached {statuses} within {timeout}s")


def main():
    # Stopped (Ctrl-C, SIGTERM): the servers it started are stopped and its files deleted all the same.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="portal-bench-files-"))
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    (BASE_DIR / "var").mkdir(exist_ok=True)
    env.setdefault("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'bench-file-upload.sqlite3'}")
    env["MEDIA_ROOT"] = str(workdir / "media")
    env["CELERY_BROKER_FOLDER"] = str(workdir / "broker")
    env["CELERY_TASK_ALWAYS_EAGER"] = "false"
    env["PORTAL_OUTBOUND_ALLOWED_NETWORKS"] = "127.0.0.1/32"  # the worker sends to the portal itself
    env.setdefault("LOG_LEVEL", "WARNING")
    (workdir / "broker").mkdir()
    os.environ.update(env)
    results = {}
    web = worker = None
    try:
        database = env["DATABASE_URL"].split(":")[0]
        print(f"database: {database}; broker: {env.get('CELERY_BROKER_URL', 'filesystem://').split('://')[0]}; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
        size = FILE_BYTES
        free = shutil.disk_usage(workdir).free
        needed = 3 * size + CSV_BYTES + GIB
        print(f"free disk: {free / GIB:.1f} GiB; needed for {size / GIB:.1f} GiB × 3, the CSV and a margin: "
              f"{needed / GIB:.1f} GiB", flush=True)
        if free < needed:
            size = max(GIB // 4, (free - CSV_BYTES - GIB) // 3 // GIB * GIB)
            print(f"NOT ENOUGH DISK: the big file is scaled down to {size / GIB:.2f} GiB", flush=True)

        manage(env, "migrate", "--noinput")
        manage(env, "createcachetable")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        demo = json.loads(manage(env, "demo", "--json", "--tenant", TENANT, "--base-url", base))
        linked_token = next(i for i in demo["integrations"] if i["protocol"] == "file_upload")["api_token"]

        import django

        django.setup()
        from django.contrib.auth import get_user_model

        from integrations import services
        from integrations.protocols.file_upload import tokens
        from integrations.protocols.file_upload.slots import file_upload_tokens
        from portal.models import Tenant
        from uploads.intake import receive
        from uploads.models import Upload

        tenant = Tenant.objects.get(slug=TENANT)
        user = get_user_model().objects.get(username=demo["username"])
        for old in file_upload_tokens(tenant).filter(name__startswith="bench ").active():
            services.revoke_api_token(old, user)
        _, token = tokens.issue(tenant, user, "bench inbound")  # not linked: the file is kept as it is
        _, vendor_token = tokens.issue(tenant, user, "bench outbound")

        big = workdir / "big.bin"
        started = time.perf_counter()
        make_file(big, size)
        print(f"generated {size:,} bytes in {time.perf_counter() - started:.1f} s", flush=True)

        web_log, worker_log = workdir / "gunicorn.log", workdir / "celery.log"
        web = start(env, ["gunicorn", "-c", "python:portal.serving", "portal.wsgi", "--bind", f"127.0.0.1:{port}"],
                    open(web_log, "w"))
        worker = start(env, ["celery", "-A", "portal", "worker", "--loglevel=WARNING", "--concurrency=2",
                             "--without-gossip", "--without-mingle"], open(worker_log, "w"))
        wait_for_http(f"{base}/login/", web, web_log)
        small = workdir / "warm.csv"
        small.write_bytes(b"email,date\n" * 1000)
        for _ in range(6):  # both web workers import the app before anything is timed
            curl_put(step_one(base, token, "warm.csv"), small)

        # (a) the disk's own pace, and (b) the PUT
        a = timed_dd(big, workdir / "dd-copy.bin")
        print(f"(a) dd bs=1M conv=fsync of {size / GIB:.2f} GiB: {a:.1f} s ({size / a / 2**20:.0f} MiB/s)", flush=True)
        url = step_one(base, token, "big.bin")
        web_workers = descendants(web.pid)
        peak = Peak(web_workers)
        b, status, answer = curl_put(url, big)
        peaks, growth = peak.stop()
        if status != 200:
            raise SystemExit(f"the PUT answered {status}: {answer[:500]}\n{web_log.read_text()[-3000:]}")
        print(f"(b) curl -XPUT of {size / GIB:.2f} GiB: {b:.1f} s ({size / b / 2**20:.0f} MiB/s), HTTP {status}",
              flush=True)
        print(f"    web workers' peak RSS: {', '.join(f'{peaks[p]:.0f} MB (+{growth[p]:.0f})' for p in web_workers)}"
              f"{'' if peak.reset else ' (sampled: clear_refs was refused)'}", flush=True)
        received = Upload.objects.filter(tenant=tenant, filename="big.bin").latest("id")
        expected = sha256_of(big)
        if received.size_bytes != size or received.sha256 != expected or json.loads(answer)["sha256"] != expected:
            raise SystemExit("the stored file is not the file sent")
        a2 = timed_dd(big, workdir / "dd-copy.bin")
        print(f"    dd again after the PUT: {a2:.1f} s; stored file checked (size and SHA-256)", flush=True)
        received.file.storage.delete(received.file.name)
        results["put_peak_mb"] = round(max(growth.values()))
        results["put_vs_disk"] = round(b / a, 2)
        print(f"RESULT put_peak_mb={results['put_peak_mb']} put_vs_disk={results['put_vs_disk']}", flush=True)

        # (c) a PUT longer than gunicorn's worker timeout
        slow_port = free_port()
        slow_log = workdir / "gunicorn-slow.log"
        slow = start(env, ["gunicorn", "-c", "python:portal.serving", "portal.wsgi", "--bind",
                           f"127.0.0.1:{slow_port}", "--timeout", "5", "--workers", "1"], open(slow_log, "w"))
        try:
            wait_for_http(f"http://127.0.0.1:{slow_port}/login/", slow, slow_log)
            part = workdir / "200mb.bin"
            with open(big, "rb") as source, open(part, "wb") as f:
                f.write(source.read(200 * 1024 * 1024))
            c, status, _ = curl_put(step_one(f"http://127.0.0.1:{slow_port}", token, "200mb.bin"), part,
                                    limit_rate="20M")
        finally:
            stop(slow)
        timed_out = "WORKER TIMEOUT" in slow_log.read_text()
        results["gthread_long_put"] = "ok" if status == 200 and not timed_out else "timed_out"
        print(f"(c) 200 MB at 20 MB/s to gunicorn --timeout 5: {c:.1f} s, HTTP {status}, "
              f"{'a WORKER TIMEOUT in the log' if timed_out else 'no worker timeout'}", flush=True)
        print(f"RESULT gthread_long_put={results['gthread_long_put']}", flush=True)

        # (d) the same file, outbound, to the portal's own File Upload API
        outbound = services.create_integration(
            tenant, user, name="bench: files to ourselves", direction="outbound", protocol="file_upload",
            endpoint_url=f"{base}/api/v1/file-upload/", credentials={"api_token": vendor_token}) \
            if not tenant.integrations.filter(name="bench: files to ourselves").exists() else \
            tenant.integrations.get(name="bench: files to ourselves")
        outbound = services.update_integration(outbound, user, {"endpoint_url": f"{base}/api/v1/file-upload/",
                                                                 "sandbox": False},
                                               credentials={"api_token": vendor_token})
        outbound.refresh_from_db()
        worker_children = descendants(worker.pid)
        peak = Peak([worker.pid, *worker_children])
        started = time.perf_counter()
        with open(big, "rb") as f:
            sent = receive(outbound, f, channel=Upload.Channel.WEB, filename="big-outbound.bin", submitted_by=user)
        intake = time.perf_counter() - started
        done = wait_for_upload(lambda: Upload.objects.filter(pk=sent.pk),
                               {Upload.Status.DELIVERED, Upload.Status.NOT_DELIVERED, Upload.Status.DRY_RUN},
                               worker, worker_log)
        d = time.perf_counter() - started - intake
        peaks, growth = peak.stop()
        if done.status != Upload.Status.DELIVERED:
            raise SystemExit(f"outbound: {done.status}: {done.message} {done.errors[:2]}")
        arrived = Upload.objects.filter(tenant=tenant, filename="big-outbound.bin",
                                        integration__direction="inbound").latest("id")
        assert arrived.sha256 == expected and arrived.size_bytes == size
        print(f"(d) outbound {size / GIB:.2f} GiB: the intake took it in (spooled to a temporary file, then moved "
              f"into storage) in {intake:.1f} s; step 1 and the PUT to the portal's own API in {d:.1f} s; "
              f"{done.message}", flush=True)
        print(f"    worker processes' peak RSS: {', '.join(f'{peaks[p]:.0f} MB (+{growth[p]:.0f})' for p in peaks)}",
              flush=True)
        for name in (arrived.file.name, done.file.name):
            arrived.file.storage.delete(name)
        results["outbound_worker_peak_mb"] = round(max(peaks.values()))
        print(f"RESULT outbound_worker_peak_mb={results['outbound_worker_peak_mb']}", flush=True)

        # (e) a 1 GB CSV processed into the activity integration
        os.remove(big)
        csv_path = workdir / "activity.csv"
        rows = make_csv(csv_path, CSV_BYTES)
        print(f"CSV: {csv_path.stat().st_size:,} bytes, {rows:,} rows, {USERS} users × {DAYS} days", flush=True)
        worker_children = descendants(worker.pid)
        peak = Peak([worker.pid, *worker_children])
        started = time.perf_counter()
        e_put, status, answer = curl_put(step_one(base, linked_token, "activity.csv"), csv_path)
        if status != 200:
            raise SystemExit(f"the CSV's PUT answered {status}: {answer[:500]}")
        upload = wait_for_upload(lambda: Upload.objects.filter(tenant=tenant, filename="activity.csv").order_by("-id"),
                                 {Upload.Status.PROCESSED, Upload.Status.FAILED}, worker, worker_log)
        e = time.perf_counter() - started
        peaks, growth = peak.stop()
        print(f"(e) {csv_path.stat().st_size / GIB:.2f} GiB CSV: PUT {e_put:.1f} s, processed {e - e_put:.1f} s later "
              f"({upload.status}: {upload.message}; {upload.records:,} records, {upload.values_written:,} values)",
              flush=True)
        if upload.status != Upload.Status.PROCESSED:
            raise SystemExit(f"processing failed: {upload.errors[:3]}")
        print(f"    worker processes' peak RSS: {', '.join(f'{peaks[p]:.0f} MB (+{growth[p]:.0f})' for p in peaks)}",
              flush=True)
        results["linked_csv_worker_peak_mb"] = round(max(peaks.values()))
        print(f"RESULT linked_csv_worker_peak_mb={results['linked_csv_worker_peak_mb']}", flush=True)

        print(f"load average at the end: {os.getloadavg()[0]:.1f}", flush=True)
        print(f"goals: put_peak_mb <= 100: {results['put_peak_mb']}; put_vs_disk <= 2: {results['put_vs_disk']}; "
              f"linked CSV worker peak <= 400 MB: {results['linked_csv_worker_peak_mb']}", flush=True)
        print("RESULT " + " ".join(f"{name}={value}" for name, value in results.items()), flush=True)
    finally:
        stop(web)
        stop(worker)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
