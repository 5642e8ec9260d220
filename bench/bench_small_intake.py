"""Small uploads under load: requests per second of 1 KB JSON uploads, against a trivial view.

gunicorn as `make run` starts it (portal/serving.py: its workers and threads) and the Celery
worker as bin/run starts it, on the database and broker of the environment. The server runs
the portal with two reference views added (bench/trivial_site.py, trivial_urls.py). wrk
(Debian's package; `make bench` installs it when missing) drives 16 connections for 30 s:

  (a) at the trivial view: the ceiling of this server on this machine;
  (b) at the data endpoint of the bench tenant's `calls` integration (JSON, out of Sandbox
      Mode, so uploads are processed in arrival order): a 1 KB upload of 14 records each time.
      Then it waits until every upload accepted in (b) is processed by the worker, and checks
      that their number is the number of 201s (plus at most one per connection: the requests
      under way when wrk stopped counting);
  (c) once they are, with the worker idle, at a view that stores the same body as one row of a
      bare table with one committed INSERT, and nothing else: what any durably stored request
      costs under this server, the floor below which (b) cannot go.

Zero errors allowed: any other answer or socket error fails the run.

Last line: `RESULT small_intake_rps_ratio=<b/a> upload_rps=<b> trivial_rps=<a> p50_ms=… p99_ms=…
drain_s=<time after the load until all were processed> one_insert_ratio=<c/a> one_insert_rps=<c>`.
Target: b/a ≥ 0.3.
Settings: BENCH_SECONDS (30), BENCH_CONNECTIONS (16).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stack  # noqa: E402

TENANT = "bench"
HERE = Path(__file__).resolve().parent
SECONDS = int(os.environ.get("BENCH_SECONDS", "30"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))


def body():
    """About 1 KB of JSON: 14 records of the seed's calls example."""
    records = [{"email": f"user{i}@example.com", "date": "11/23/2026", "calls": str(i % 7 + 1)} for i in range(14)]
    return json.dumps(records).encode()


def wrk(url, body_path, headers, seconds=SECONDS):
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (make bench does it)")
    env = {**os.environ, "BENCH_BODY_FILE": str(body_path), "BENCH_HEADERS": "\n".join(headers)}
    done = subprocess.run(["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--timeout", "10s",
                           "-s", str(HERE / "wrk_post.lua"), url], env=env, capture_output=True, text=True,
                          timeout=seconds + 60)
    line = next((line for line in done.stdout.splitlines() if line.startswith("WRK ")), None)
    if done.returncode or line is None:
        raise SystemExit(f"wrk failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    result = json.loads(line[4:])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def report(label, result, expected_status):
    errors = sum(result["errors"].values()) + sum(n for s, n in result["statuses"].items() if s != expected_status)
    print(f"{label}: {result['rps']:.1f} requests/s ({result['requests']:,} in {result['seconds']:.1f} s), "
          f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms; answers {result['statuses']}, "
          f"socket errors {result['errors']}; {stack.load()}", flush=True)
    if errors:
        raise SystemExit(f"{label}: {errors} errors")


def main():
    workdir = Path(tempfile.mkdtemp(prefix="portal-bench-small-"))
    env = stack.environment(workdir, DJANGO_SETTINGS_MODULE="trivial_site",
                            PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    web = worker = None
    table_made = False
    try:
        port = stack.free_port()
        base = f"http://127.0.0.1:{port}"
        demo = stack.demo(env, TENANT, base)
        calls = next(i for i in demo["integrations"] if i.get("data_type") == "calls")
        sys.path.insert(0, str(HERE))

        import django

        django.setup()
        from django.contrib.auth import get_user_model

        from integrations import services
        from integrations.models import Integration
        from uploads.models import Upload

        one_insert_table(create=True)
        table_made = True
        integration = Integration.objects.get(tenant__slug=TENANT, key=calls["data_type"], direction="inbound")
        actor = get_user_model().objects.get(username=demo["username"])
        services.set_sandbox(integration, actor, False)
        # Earlier runs' uploads that failed would hold every new one back (arrival order).
        Upload.objects.filter(integration=integration).exclude(status__in=["processed", "skipped"]).update(
            status="skipped")

        web_log, worker_log = workdir / "gunicorn.log", workdir / "celery.log"
        web = stack.start_web(env, port, open(web_log, "w"))
        worker = stack.start_worker(env, open(worker_log, "w"))
        stack.wait_for_http(f"{base}/login/", web, web_log)
        print(f"{stack.describe(env)}; gunicorn as bin/run starts it (portal/serving.py), worker concurrency "
              f"{stack.worker_concurrency()}; wrk, {CONNECTIONS} connections, {SECONDS} s each", flush=True)

        body_path = workdir / "calls.json"
        body_path.write_bytes(body())
        print(f"upload: {body_path.stat().st_size} bytes of JSON, 14 records", flush=True)
        upload_headers = [f"Authorization: Token {calls['auth_token']}", "Content-Type: application/json"]
        # Warm-up: every gunicorn worker and thread imports and connects before it is timed.
        wrk(f"{base}/bench/trivial/", body_path, ["Content-Type: application/json"], seconds=3)
        wrk(calls["endpoint"], body_path, upload_headers, seconds=3)
        stack.wait_for(lambda: not Upload.objects.filter(integration=integration).exclude(
            status__in=["processed", "failed", "skipped"]).exists(), 300, "warm-up processing", worker, worker_log,
            every=0.2)

        a = wrk(f"{base}/bench/trivial/", body_path, ["Content-Type: application/json"])
        report("(a) trivial JSON view", a, "200")

        first = Upload.objects.filter(integration=integration).order_by("-id").values_list("id", flat=True).first() or 0
        b = wrk(calls["endpoint"], body_path, upload_headers)
        load_ended = time.monotonic()
        report("(b) 1 KB JSON uploads", b, "201")
        accepted = b["statuses"].get("201", 0)
        new = Upload.objects.filter(integration=integration, id__gt=first)

        def drained():
            return not new.exclude(status__in=["processed", "failed"]).exists()

        stack.wait_for(drained, 900, "processing the accepted uploads", worker, worker_log, every=0.2)
        drain = time.monotonic() - load_ended
        counts = dict((s, n) for s, n in new.values_list("status").annotate(n=django.db.models.Count("id")))
        stored = sum(counts.values())
        print(f"    after the load: {stored:,} uploads stored for {accepted:,} answers 201 counted by wrk, "
              f"all processed {drain:.1f} s after the load ended ({counts})", flush=True)
        # wrk stops counting at the deadline: the requests its connections still had under way were
        # answered (and stored) all the same, at most one per connection.
        if set(counts) != {"processed"} or not accepted <= stored <= accepted + CONNECTIONS:
            raise SystemExit("every 201 must be one upload, processed")

        c = wrk(f"{base}/bench/one-insert/", body_path, ["Content-Type: application/json"])
        report("(c) the same body, one committed INSERT into a bare table", c, "201")
        ratio = b["rps"] / a["rps"]
        print(f"target b/a >= 0.3: {ratio:.3f}; the floor, c/a: {c['rps'] / a['rps']:.3f}", flush=True)
        print(f"RESULT small_intake_rps_ratio={ratio:.3f} upload_rps={b['rps']:.1f} trivial_rps={a['rps']:.1f} "
              f"p50_ms={b['p50_ms']:.1f} p99_ms={b['p99_ms']:.1f} drain_s={drain:.1f} "
              f"one_insert_ratio={c['rps'] / a['rps']:.3f} one_insert_rps={c['rps']:.1f}", flush=True)
    finally:
        stack.stop(web)
        stack.stop(worker)
        if table_made:
            one_insert_table(create=False)
        shutil.rmtree(workdir, ignore_errors=True)


def one_insert_table(create):
    """(c)'s bare table: made empty before the run, dropped after it."""
    from django.db import connection

    from trivial_urls import ONE_INSERT_TABLE

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {ONE_INSERT_TABLE}")
        if create:
            cursor.execute(f"CREATE TABLE {ONE_INSERT_TABLE} (body text)")


if __name__ == "__main__":
    main()
