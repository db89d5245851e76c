"""The upstream behind the gateways in the tests: it answers with, and records, what it received.

``python -m apps.echo_upstream --port P --record FILE [--tls CERT KEY]``

Every request is appended to FILE as one JSON line and answered 200 with the same JSON:
method, target, headers (as received, in order), body length and SHA-256. Paths starting
``/status/NNN`` answer NNN with an HTML body holding ``UPSTREAM-SECRET`` (a page a gateway
must not pass on where it promises the envelope); ``/envelope/NNN`` answers NNN with an
envelope of its own (details ``from the upstream``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    record_path = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def _serve(self) -> None:
        body = self._body()
        seen = {
            "method": self.command,
            "target": self.path,
            "headers": [[name, value] for name, value in self.headers.items()],
            "body_length": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        with _lock, open(self.record_path, "a", encoding="utf-8") as record:
            record.write(json.dumps(seen) + "\n")
        status, content_type, payload = 200, "application/json", json.dumps(seen).encode()
        if self.path.startswith("/status/"):
            status = int(self.path.split("/")[2])
            content_type = "text/html"
            payload = b"<html><body>UPSTREAM-SECRET traceback here</body></html>"
        elif self.path.startswith("/envelope/"):
            status = int(self.path.split("/")[2])
            payload = json.dumps({"error": {"code": status, "message": "Upstream",
                                            "details": "from the upstream"}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = parser.parse_args()
    _Handler.record_path = args.record
    server: socketserver.TCPServer = _Server(("127.0.0.1", args.port), _Handler)
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls[0], args.tls[1])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"echo upstream on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
