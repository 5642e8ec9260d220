"""How the intake puts a body in storage: a large one is written to the disk once, then moved
into place; a refused one leaves no temporary file behind."""

import hashlib
import io
import os

import pytest
from django.core.files.storage import filesystem
from django.core.files.uploadedfile import TemporaryUploadedFile

from uploads import intake
from uploads.errors import IntakeError


def csv_of(rows):
    lines = ["email,date,calls,talk_minutes,deals"]
    lines += [f"user{i % 500}@example.com,8/{i % 28 + 1}/2016,{i % 9},{i % 60},{i % 3}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def moves(monkeypatch):
    """The temporary files the local storage moved into place (instead of copying them)."""
    moved = []

    def recording_move(old, new, *args, **kwargs):
        moved.append((old, new))
        return real_move(old, new, *args, **kwargs)

    real_move = filesystem.file_move_safe
    monkeypatch.setattr(filesystem, "file_move_safe", recording_move)
    return moved


def temporary_files(settings):
    return os.listdir(settings.FILE_UPLOAD_TEMP_DIR)


def test_a_large_streamed_body_is_written_once_then_moved_into_storage(activity_integration, moves, settings):
    body = csv_of(60_000)
    assert len(body) > intake.SPOOL_IN_MEMORY_BYTES
    upload = intake.receive(activity_integration, io.BytesIO(body), channel="api", content_type="text/csv")
    assert len(moves) == 1
    assert os.path.dirname(moves[0][0]) == str(settings.FILE_UPLOAD_TEMP_DIR)
    assert moves[0][1] == upload.file.path
    with upload.file.open("rb") as stored:
        assert stored.read() == body
    assert (upload.size_bytes, upload.sha256) == (len(body), hashlib.sha256(body).hexdigest())
    assert temporary_files(settings) == []


def test_a_small_body_stays_in_memory_and_is_written_by_storage(activity_integration, moves, settings):
    body = csv_of(10)
    upload = intake.receive(activity_integration, body, channel="api", content_type="text/csv")
    assert moves == []
    with upload.file.open("rb") as stored:
        assert stored.read() == body


def test_a_forms_temporary_file_is_not_copied_but_moved_into_storage(activity_integration, moves, settings):
    body = csv_of(60_000)
    sent = TemporaryUploadedFile("activity.csv", "text/csv", len(body), None)  # as Django's upload handler leaves it
    sent.write(body)
    sent.seek(0)
    inode = os.stat(sent.temporary_file_path()).st_ino
    upload = intake.receive(activity_integration, sent, channel="web", content_type="text/csv",
                            filename="activity.csv")
    assert os.stat(upload.file.path).st_ino == inode  # the very file, not a copy
    assert upload.sha256 == hashlib.sha256(body).hexdigest()
    sent.close()  # as Django closes it at the end of the request: the file it named is gone already
    with upload.file.open("rb") as stored:
        assert stored.read() == body


def test_a_refused_large_body_leaves_no_temporary_file(activity_integration, settings):
    broken = csv_of(60_000).replace(b"user7@example.com,8/8/2016,7", b"user7@example.com,8/8/2016,seven", 1)
    with pytest.raises(IntakeError):
        intake.receive(activity_integration, io.BytesIO(broken), channel="api", content_type="text/csv")
    assert temporary_files(settings) == []
    assert not activity_integration.uploads.exists()


def test_a_body_over_the_limit_leaves_no_temporary_file(activity_integration, settings, monkeypatch):
    monkeypatch.setattr(type(activity_integration.protocol_spec), "max_upload_bytes", 2 * intake.SPOOL_IN_MEMORY_BYTES)
    with pytest.raises(IntakeError) as refused:
        intake.receive(activity_integration, io.BytesIO(csv_of(120_000)), channel="api", content_type="text/csv")
    assert refused.value.status == 413
    assert temporary_files(settings) == []
