"""A vendor's data endpoint for the delivery benchmark: HTTPS on loopback, answers 201 after a delay.

    python bench/vendor.py PORT CERT_FILE KEY_FILE DELAY_SECONDS

HTTP/1.1 with keep-alive, one thread per connection (the TLS handshake in that thread, not in
the accept loop). It counts the requests it answered and the TLS handshakes that carried at
least one POST, so that a client's handshakes per file can be told; GET /stats answers them
as JSON (its own connection is not counted), POST /reset sets them to zero.
"""

import json
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS = {"posts": 0, "handshakes": 0, "authorized": 0}
LOCK = threading.Lock()


def count(**increments):
    with LOCK:
        for name, by in increments.items():
            COUNTS[name] += by


class Vendor(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # else the body waits for the client's delayed ACK of the headers (40 ms)
    delay = 0.05
    posted = False

    def do_POST(self):  # noqa: N802 — http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path == "/reset":
            with LOCK:
                COUNTS.update(posts=0, handshakes=0, authorized=0)
            return self.answer(200, {})
        time.sleep(self.delay)  # the vendor's own work: what a real one takes to say 201
        count(posts=1, handshakes=0 if self.posted else 1,
              authorized=1 if self.headers.get("Authorization", "").startswith("Token ") else 0)
        self.posted = True
        self.answer(201, {"id": COUNTS["posts"], "status": "queued"})

    def do_GET(self):  # noqa: N802
        with LOCK:
            self.answer(200, dict(COUNTS))

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, context):
        super().__init__(address, Vendor)
        self.context = context

    def finish_request(self, request, client_address):
        try:
            request = self.context.wrap_socket(request, server_side=True)  # in the connection's thread
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


def main(port, cert, key, delay):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    Vendor.delay = float(delay)
    server = TLSServer(("127.0.0.1", int(port)), context)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:5])
