"""A stand-in forward-auth service that records exactly what a gateway asks it.

``python -m apps.recording_auth --port P --record FILE``

The gateway tests use it to pin what each gateway sends (method, path, headers, body)
— the facts the service's dialects are written against. Every request is appended to
FILE as one JSON line. ``Proxy-Authorization: Basic <alice:secret>`` is answered 200
with ``X-Authenticated-User: alice`` and ``X-Request-ID: recorded-id``; anything else
407 with a challenge and a small JSON body.
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GOOD = "Basic " + base64.b64encode(b"alice:secret").decode()
_lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    record_path = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = {"method": self.command, "path": self.path,
                "headers": [[name, value] for name, value in self.headers.items()],
                "body_length": len(body)}
        with _lock, open(self.record_path, "a", encoding="utf-8") as record:
            record.write(json.dumps(seen) + "\n")
        if self.headers.get("Proxy-Authorization") == GOOD:
            self.send_response(200)
            self.send_header("X-Authenticated-User", "alice")
            self.send_header("X-Request-ID", "recorded-id")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        payload = b'{"error": {"code": 407}}'
        self.send_response(407)
        self.send_header("Proxy-Authenticate", 'Basic realm="recorded"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", required=True)
    args = parser.parse_args()
    _Handler.record_path = args.record
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
    server.daemon_threads = True
    print(f"recording auth on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
