"""The File Upload API through gunicorn as it is deployed (portal/serving.py), driven by the
seed's own commands: curl and jq. And what only a real server shows: a Content-Length over 5 GB
answered before any body is sent, a PUT that breaks off mid-way leaving no file, and a PUT that
outlasts gunicorn's worker timeout."""

import hashlib
import json
import re
import shutil
import socket
import subprocess
from urllib.parse import urlsplit

import pytest

from integrations.protocols.file_upload import tokens
from integrations.protocols.file_upload.models import FileSlot
from live_stack import gunicorn, wait_for
from uploads.models import Upload

pytestmark = pytest.mark.django_db(transaction=True)

CSV = b"email,date,calls\njason@yourcompany.com,8/16/2016,3\n" * 2000


@pytest.fixture
def token(tenant, owner):
    return tokens.issue(tenant, owner, "CRM export")[1]


def step_one_command(server, token, filename):
    return (f"curl -s -XPOST -H 'Auth-Api-Token: {token}' -H 'Content-type: application/json' "
            f"-d '{{\"filename\": \"{filename}\"}}' {server.url}/api/v1/file-upload/")


def bash(script, cwd):
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not shutil.which("jq"), reason="Debian's jq is not installed")
def test_the_seeds_workflow_with_curl_and_jq(tmp_path, settings, token):
    (tmp_path / "customers.csv").write_bytes(CSV)
    with gunicorn(tmp_path, settings.MEDIA_ROOT) as server:
        done = bash(f"url=$({step_one_command(server, token, 'customers.csv')} | jq -r .url)\n"
                    'curl -s -f -XPUT "${url}" --upload-file customers.csv', tmp_path)
    assert done.returncode == 0, (done.stdout, done.stderr)
    upload = Upload.objects.get()
    assert json.loads(done.stdout)["sha256"] == upload.sha256 == hashlib.sha256(CSV).hexdigest()
    with upload.file.open("rb") as stored:
        assert stored.read() == CSV


def test_the_url_pasted_as_printed(tmp_path, settings, token):
    """The URL copied from the printed answer, character for character, between the quotes."""
    (tmp_path / "customers.csv").write_bytes(CSV)
    with gunicorn(tmp_path, settings.MEDIA_ROOT) as server:
        printed = bash(step_one_command(server, token, "customers.csv"), tmp_path).stdout
        pasted = re.search(r'"url": "([^"]*)"', printed).group(1)
        assert "&" in pasted and "\\" not in pasted
        done = bash(f'curl -s -f -XPUT "{pasted}" --upload-file customers.csv', tmp_path)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert Upload.objects.get().size_bytes == len(CSV)


def raw_put(server, path, length, body=b""):
    """A PUT over a plain socket: the headers, then `body` (maybe less than `length`)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Length: {length}\r\n"
                 f"User-Agent: test\r\n\r\n".encode() + body)
    return sock


def test_over_five_gb_is_answered_413_before_any_body_is_sent(tmp_path, settings, token):
    with gunicorn(tmp_path, settings.MEDIA_ROOT) as server:
        url = json.loads(bash(step_one_command(server, token, "huge.csv"), tmp_path).stdout)["url"]
        parts = urlsplit(url)
        with raw_put(server, f"{parts.path}?{parts.query}", 5 * 1024 ** 3 + 1) as sock:
            answer = b""
            while b"}]}" not in answer and (data := sock.recv(65536)):
                answer += data
            answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413") and "file_too_large" in answer
    assert not Upload.objects.exists()


def stored(media):
    """The files kept under the uploads' names."""
    return [p for p in (media / "uploads").rglob("*") if p.is_file()]


def test_a_put_that_breaks_off_leaves_no_file(tmp_path, settings, token):
    media = settings.MEDIA_ROOT
    incoming = media / "file-upload-incoming"
    with gunicorn(tmp_path, media) as server:
        url = json.loads(bash(step_one_command(server, token, "customers.csv"), tmp_path).stdout)["url"]
        parts = urlsplit(url)
        sock = raw_put(server, f"{parts.path}?{parts.query}", len(CSV), CSV[:len(CSV) // 2])
        # Half of it is in: written to a temporary file only, no upload's name, no row.
        assert wait_for(lambda: incoming.exists() and any(incoming.iterdir()), timeout=30)
        assert stored(media) == [] and not Upload.objects.exists()
        sock.close()  # the client goes away
        assert wait_for(lambda: not any(incoming.iterdir()), timeout=30), list(incoming.iterdir())
        assert wait_for(lambda: FileSlot.objects.get().status == FileSlot.Status.WAITING, timeout=30)
        assert stored(media) == [] and not Upload.objects.exists()
        # The same URL works for the whole file.
        (tmp_path / "customers.csv").write_bytes(CSV)
        done = bash(f'curl -s -f -XPUT "{url}" --upload-file customers.csv', tmp_path)
    assert done.returncode == 0 and Upload.objects.get().size_bytes == len(CSV)


def test_a_put_longer_than_the_worker_timeout_is_not_cut(tmp_path, settings, token):
    """gthread: the worker's heartbeat is its main thread's, not the one reading the body."""
    body = CSV * 6  # about 0.6 MB, at 100 KB/s: 6 s, twice the timeout below
    (tmp_path / "slow.csv").write_bytes(body)
    with gunicorn(tmp_path, settings.MEDIA_ROOT, args=["--timeout", "3"]) as server:
        url = json.loads(bash(step_one_command(server, token, "slow.csv"), tmp_path).stdout)["url"]
        done = bash(f'curl -s -f --limit-rate 100K -XPUT "{url}" --upload-file slow.csv', tmp_path)
        log = server.log
    assert done.returncode == 0, (done.stdout, done.stderr, log[-2000:])
    assert Upload.objects.get().size_bytes == len(body) and "WORKER TIMEOUT" not in log
