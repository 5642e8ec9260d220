"""Where a 1 KB upload's time goes in the web process: a profile, not a benchmark (make bench skips it).

    .venv/bin/python bench/profile_small_intake.py [N]

Sends N (default 300) uploads of bench_small_intake.py's 1 KB JSON body to the bench tenant's
`calls` integration through Django's full request handling (middleware, authentication, the
view, the intake) in this process, under cProfile, on the database and broker of the
environment, and prints the time per request of each part. No worker runs: the uploads it
made are deleted at the end.
"""

import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stack  # noqa: E402

# (part, file suffix, function name): cumulative time of these calls; an indented part is inside
# the one above it (the broker publish runs in the commit's on-commit hooks).
PARTS = [
    ("whole request (Django's handler)", "django/core/handlers/base.py", "get_response"),
    ("authentication (token lookup)", "integrations/auth.py", "authenticate_credentials"),
    ("the intake (uploads.intake.receive)", "uploads/intake.py", "receive"),
    ("  check: reading the JSON (protocol.check)", "data_integration/protocol.py", "check"),
    ("    of which the Data Format (metrics query)", "data_integration/protocol.py", "of"),
    ("  storing the file (FieldFile.save)", "django/db/models/fields/files.py", "save"),
    ("  commit, with its on-commit hooks", "django/db/transaction.py", "__exit__"),
    ("    of which the broker publish", "uploads/queue.py", "process_upload"),
    ("request log row (uploads.request_log)", "uploads/request_log.py", "record"),
    ("database round trips (psycopg, all of the above)", "psycopg/cursor.py", "execute"),
]


def main(count):
    workdir = tempfile.mkdtemp(prefix="portal-profile-")
    env = stack.environment(workdir)
    demo = stack.demo(env, "bench", "http://testserver")
    calls = next(i for i in demo["integrations"] if i.get("data_type") == "calls")
    import django

    django.setup()
    from django.test import Client

    import bench_small_intake

    from uploads.models import Upload

    first = (Upload.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
    client, body = Client(), bench_small_intake.body()
    path = calls["endpoint"].removeprefix("http://testserver")
    headers = {"HTTP_AUTHORIZATION": f"Token {calls['auth_token']}"}

    def send():
        response = client.post(path, body, content_type="application/json", **headers)
        assert response.status_code == 201, response.content

    for _ in range(30):  # warm: imports, connections, caches
        send()
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    for _ in range(count):
        send()
    profile.disable()
    wall = (time.perf_counter() - started) / count
    stats = pstats.Stats(profile).stats
    print(f"{stack.describe(env)}; {count} uploads of {len(body)} bytes, {wall * 1000:.2f} ms each "
          f"(wall, under the profiler)")
    for label, suffix, name in PARTS:
        spent = sum(entry[3] for (file, _, function), entry in stats.items()
                    if file.endswith(suffix) and function == name)
        print(f"  {spent / count * 1000:7.2f} ms  {label}")
    Upload.objects.filter(id__gte=first, tenant__slug="bench", integration__key=calls["data_type"]).delete()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
