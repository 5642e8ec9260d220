"""The embedded broker: kombu's filesystem transport, with messages written atomically.

kombu's own transport creates a message file and then writes into it, while a worker moves
and reads any file with a message's name: a worker polling at the wrong moment reads a
half-written message and dies on a JSON error (reported upstream as celery/kombu#1551). Here a message is
written under a temporary name that no worker reads, then renamed into place: a rename
within one folder is atomic, so a worker sees the whole message or none of it.
"""

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".partial"  # not "<queue>.msg": workers pass it by
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
