"""What the benchmarks share: the environment, and the portal's processes as `make run` starts them.

A benchmark runs on the database and broker of the environment (DATABASE_URL,
CELERY_BROKER_URL); without DATABASE_URL, on a SQLite file of its own (var/bench.sqlite3), so
that a running `make run` cannot lock it out. Its stored files and the filesystem broker's
folder live in a temporary directory that goes with it.
"""

import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))


def environment(workdir, **overrides):
    """The environment of the bench and of the processes it starts (also put into os.environ)."""
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    (BASE_DIR / "var").mkdir(exist_ok=True)
    env.setdefault("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'bench.sqlite3'}")
    env["MEDIA_ROOT"] = str(Path(workdir) / "media")  # the bench's stored files go with it
    env["CELERY_BROKER_FOLDER"] = str(Path(workdir) / "broker")  # used by the filesystem broker only
    env["CELERY_TASK_ALWAYS_EAGER"] = "false"
    env.setdefault("LOG_LEVEL", "WARNING")
    env.update({k: str(v) for k, v in overrides.items() if v is not None})
    (Path(workdir) / "broker").mkdir(exist_ok=True)
    os.environ.update(env)
    return env


def on_postgres(env):
    return env.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://", "pgsql://"))


def describe(env):
    """The configuration in words, never the URLs (they may hold a password)."""
    database = "PostgreSQL" if on_postgres(env) else env.get("DATABASE_URL", "sqlite").split(":")[0]
    broker = env.get("CELERY_BROKER_URL", "filesystem://").split("://")[0]
    return f"database: {database}; broker: {broker}; {os.cpu_count()} CPUs, {load()}"


def load():
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min: {five:.1f})"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env, *args):
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def demo(env, tenant, base_url):
    """Migrate, and seed (or refresh) the bench's own demo tenant: its integrations and fresh tokens."""
    manage(env, "migrate", "--noinput")
    return json.loads(manage(env, "demo", "--json", "--tenant", tenant, "--base-url", base_url))


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


def run_worker_args():
    """The Celery worker's arguments in bin/run (`make run`), without `--beat` (its schedule file
    is make run's) and with `${WORKERS:-2}` as the shell would expand it."""
    line = next(line for line in (BASE_DIR / "bin" / "run").read_text().splitlines()
                if line.lstrip().startswith(".venv/bin/celery"))
    words = shlex.split(line.rstrip("&").strip())[1:]  # after .venv/bin/celery
    args = []
    for word in words:
        if word == "--beat" or word.startswith("--loglevel"):
            continue
        if "${WORKERS:-" in word:
            default = word.split("${WORKERS:-", 1)[1].split("}", 1)[0]
            word = word.split("$", 1)[0] + os.environ.get("WORKERS", default)
        args.append(word)
    return ["celery", *args, "--loglevel=WARNING"]


def worker_concurrency():
    return int(next(a.split("=", 1)[1] for a in run_worker_args() if a.startswith("--concurrency=")))


def start_worker(env, log, extra=()):
    return start(env, [*run_worker_args(), *extra], log)


def start_web(env, port, log, extra=()):
    """gunicorn as bin/run starts it: portal/serving.py's workers and threads."""
    return start(env, ["gunicorn", "-c", "python:portal.serving", "portal.wsgi", "--bind", f"127.0.0.1:{port}",
                       "--access-logfile", "/dev/null", *extra], log)


def wait_for_http(url, process, log_path, timeout=60):
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[2]} exited:\n{Path(log_path).read_text()[-3000:]}")
        try:
            requests.get(url, timeout=30)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit(f"nothing answered on {url} within {timeout}s")


def wait_for(predicate, timeout, what, process=None, log_path=None, every=0.005):
    """Poll until predicate() is true; its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise SystemExit(f"{what}: the process exited:\n{Path(log_path).read_text()[-3000:]}")
        time.sleep(every)
    raise SystemExit(f"{what}: not within {timeout}s")


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


def cpu_seconds(pids):
    """User + system CPU time of these processes so far (from /proc), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / ticks


def median_ms(seconds):
    return statistics.median(seconds) * 1000
