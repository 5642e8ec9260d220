"""The embedded broker writes a message under a name no worker reads, then renames it into place."""

import os

from kombu import Connection

from portal.broker import Transport


def test_a_message_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    folder = str(tmp_path)
    options = {"data_folder_in": folder, "data_folder_out": folder, "processed_folder": folder}
    seen_while_writing = []
    real_replace = os.replace

    def replace(source, target):
        # Just before the rename: the whole message is in the partial file, and no worker
        # would take that file for a message of the queue.
        seen_while_writing.append(sorted(os.listdir(folder)))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with Connection("filesystem://", transport=Transport, transport_options=options) as connection:
        channel = connection.default_channel
        channel._put("celery", {"body": "x" * 100_000})
        assert [name.endswith(".celery.msg.partial") for name in seen_while_writing[0]] == [True]
        names = os.listdir(folder)
        assert len(names) == 1 and names[0].endswith(".celery.msg")
        assert channel._get("celery") == {"body": "x" * 100_000}
        assert os.listdir(folder) == []  # taken by the worker
