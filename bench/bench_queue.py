"""Queue latency: how long an accepted upload waits before a worker starts on it.

For each broker, a Celery worker started as `make run` starts it, and 20 small uploads to the
bench tenant's `calls` integration (Sandbox Mode: none waits for another), one at a time, at
random moments (a worker that polls is caught at any point of its cycle). The latency of one
upload is its `started_at` (the worker claimed it) minus its `queued_at` (set just before the
intake stores the file and commits): the time from commit to the task starting, plus the
few milliseconds of storing and committing. Median of 20.

Brokers, in one run: the embedded filesystem broker as configured (settings.py:
PORTAL_BROKER_POLLING_SECONDS), the same with kombu's default polling (every second: the
baseline), and Redis when CELERY_BROKER_URL (or BENCH_REDIS_URL) names one.

Last line: `RESULT queue_latency_ms=<filesystem> queue_latency_redis_ms=<redis or nan>
queue_latency_kombu_default_ms=<baseline>`. Target: ≤ 100 ms on the filesystem broker.
"""

import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stack  # noqa: E402

TENANT = "bench"
SAMPLES = 20
BODY = b'[{"email": "jason@yourcompany.com", "date": "8/16/2016", "calls": "3"}]'


def measure(workdir):
    """One broker (the environment's): the latencies of SAMPLES uploads, as JSON on stdout."""
    env = stack.environment(workdir)
    demo = stack.demo(env, TENANT, "http://127.0.0.1:8000")
    import django

    django.setup()
    from integrations.models import Integration
    from uploads.intake import receive
    from uploads.models import Upload

    from django.contrib.auth import get_user_model

    from integrations import services

    calls = Integration.objects.get(tenant__slug=TENANT, key=next(
        i["data_type"] for i in demo["integrations"] if i.get("data_type") == "calls"), direction="inbound")
    # In Sandbox Mode, so that no upload another run left behind holds these back (arrival order).
    calls = services.set_sandbox(calls, get_user_model().objects.get(username=demo["username"]), True)
    log_path = Path(workdir) / "celery.log"
    worker = stack.start_worker(env, open(log_path, "w"))
    try:
        def one():
            upload = receive(calls, BODY, channel="api", content_type="application/json", submitted_via="bench")
            done = stack.wait_for(
                lambda: Upload.objects.filter(pk=upload.pk, status__in=["processed", "failed"]).values_list(
                    "queued_at", "started_at", "status").first(), 120, "processing", worker, log_path)
            if done[2] != "processed":
                raise SystemExit(f"upload {upload.pk} {done[2]}")
            return (done[1] - done[0]).total_seconds()

        one()  # warm-up: the worker's first task pays for imports and connections
        rng = random.Random(8162016)
        latencies = []
        for _ in range(SAMPLES):
            time.sleep(rng.uniform(0.05, 0.25))  # at a random point of a polling worker's cycle
            latencies.append(one())
        # What polling costs: the worker's CPU while it waits for work.
        pids = [worker.pid, *stack.descendants(worker.pid)]
        before, started = stack.cpu_seconds(pids), time.monotonic()
        time.sleep(5)
        idle_cpu = (stack.cpu_seconds(pids) - before) / (time.monotonic() - started)
    finally:
        stack.stop(worker)
    print(json.dumps({"latencies": latencies, "idle_cpu": idle_cpu}))


def run(label, **env):
    workdir = tempfile.mkdtemp(prefix="portal-bench-queue-")
    try:
        done = subprocess.run([sys.executable, __file__, "--one", workdir], env={**os.environ, **env},
                              capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise SystemExit(f"{label}: failed:\n{done.stderr[-3000:]}")
        measured = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ms = sorted(x * 1000 for x in measured["latencies"])
    print(f"{label}: median {statistics.median(ms):.0f} ms, min {ms[0]:.0f}, max {ms[-1]:.0f} "
          f"(of {len(ms)}); the idle worker uses {measured['idle_cpu']:.1%} of a core ({stack.load()})", flush=True)
    return statistics.median(ms)


def main():
    broker = os.environ.get("CELERY_BROKER_URL", "")
    redis_url = os.environ.get("BENCH_REDIS_URL") or (broker if broker.startswith(("redis://", "rediss://")) else "")
    database = dict(os.environ)
    database.setdefault("DATABASE_URL", f"sqlite:///{stack.BASE_DIR / 'var' / 'bench.sqlite3'}")
    print(stack.describe({**database, "CELERY_BROKER_URL": "filesystem://"}).replace("broker: filesystem; ", ""),
          flush=True)
    filesystem = run("filesystem broker (as configured)", CELERY_BROKER_URL="filesystem://")
    redis = run("Redis", CELERY_BROKER_URL=redis_url) if redis_url else math.nan
    kombu_default = run("filesystem broker, kombu's default polling (1 s)", CELERY_BROKER_URL="filesystem://",
                        PORTAL_BROKER_POLLING_SECONDS="1.0")
    print(f"RESULT queue_latency_ms={filesystem:.0f} queue_latency_redis_ms={redis:.0f} "
          f"queue_latency_kombu_default_ms={kombu_default:.0f}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        measure(sys.argv[2])
    else:
        main()
