"""Real processes for the tests that need them, on the test's own database: gunicorn as it is
deployed (portal/serving.py) and Celery workers. Used with pytest-django's transactional
database, so that what a test writes is committed and the processes see it."""

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import requests
from django.conf import settings as django_settings
from django.db import connection

BASE_DIR = Path(django_settings.BASE_DIR)


def database_url():
    """The URL of the database this test runs on, for another process to use the same one."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "") + (":" + quote(db["PASSWORD"]) if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout=90, interval=0.1):
    """Poll a condition until it holds (True) or the timeout passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


def stop(process, timeout=15):
    """SIGTERM to the process group, then SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class Server:
    def __init__(self, process, port, log_path, broker_env):
        self.process, self.port, self.log_path = process, port, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.broker_env = broker_env  # for a worker that takes the tasks this server sends

    @property
    def log(self):
        return self.log_path.read_text(errors="replace")


@contextmanager
def gunicorn(tmp_path, media_root, env=None, args=(), broker_env=None):
    """gunicorn -c python:portal.serving portal.wsgi on a free port of 127.0.0.1, DEBUG off; its
    tasks go to broker_env's broker (default: the environment's, or a filesystem broker of its own)."""
    port = free_port()
    if broker_env is None:
        broker = tmp_path / "server-broker"
        broker.mkdir(exist_ok=True)
        broker_env = {"CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL") or "filesystem://",
                      "CELERY_BROKER_FOLDER": str(broker)}
    environment = {
        **os.environ, "DATABASE_URL": database_url(), "MEDIA_ROOT": str(media_root), "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1", "PORTAL_BASE_URL": f"http://127.0.0.1:{port}",
        "WEB_WORKERS": "1", **broker_env, **(env or {}),
    }
    log_path = tmp_path / f"gunicorn-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:portal.serving", "portal.wsgi",
             "--bind", f"127.0.0.1:{port}", *args],
            cwd=BASE_DIR, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(process, port, log_path, broker_env)

    def up():
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{server.log[-3000:]}")
        try:
            return requests.get(f"{server.url}/login/", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        assert wait_for(up, timeout=60), f"gunicorn did not answer:\n{server.log[-3000:]}"
        yield server
    finally:
        stop(process)


def start_worker(tmp_path, media_root, broker_env, name="worker", pool="solo", extra_env=None, beat=False,
                 concurrency=2):
    """A real `celery -A portal worker` process in its own process group (so that SIGKILL to the
    group kills it and any child it forked); its log in tmp_path/<name>.log."""
    env = {**os.environ, **broker_env, "DATABASE_URL": database_url(), "MEDIA_ROOT": str(media_root),
           "CELERY_TASK_ALWAYS_EAGER": "false", "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    log = open(tmp_path / f"{name}.log", "ab")
    args = [sys.executable, "-m", "celery", "-A", "portal", "worker", f"--pool={pool}", "--loglevel=INFO",
            "--without-gossip", "--without-mingle", "-n", f"{name}-{os.getpid()}@%h"]
    if pool != "solo":
        args.append(f"--concurrency={concurrency}")
    if beat:
        args += ["--beat", "-s", str(tmp_path / f"{name}-beat-schedule")]
    process = subprocess.Popen(args, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    log.close()
    process.log_path = tmp_path / f"{name}.log"
    return process
