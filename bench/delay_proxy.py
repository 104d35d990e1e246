"""A delaying HTTP proxy for the benchmarks: Firehose (or Kinesis) answering slowly, in front of moto.

Usage: .venv/bin/python bench/delay_proxy.py --port 8001 --target http://127.0.0.1:4566 --delay-ms 300

Holds every Firehose and Kinesis data call (X-Amz-Target Firehose_*.Put*, Kinesis_*.Put*)
for --delay-ms before passing it on; other calls pass at once. Counts the calls, the
records, their bytes and the bytes Firehose would bill (each record rounded up to
5 KB), served at GET /__counts.
"""

import argparse
import base64
import http.client
import http.server
import json
import math
import signal
import socket
import sys
import threading
import time
import urllib.parse

BILLING_UNIT = 5 * 1024  # Firehose bills each record rounded up to 5 KB
counts = {"calls": 0, "records": 0, "bytes": 0, "billed_bytes": 0}
_counts_lock = threading.Lock()


def make_handler(target: str, delay: float):
    parsed = urllib.parse.urlsplit(target)
    local = threading.local()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            # Headers and body go out in separate writes: without this, Nagle's algorithm
            # and the client's delayed ACK add 40 ms to every answer.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path == "/__counts":
                body = json.dumps(counts).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self._forward()

        def do_POST(self):
            self._forward()

        do_PUT = do_HEAD = do_DELETE = do_POST

        def _forward(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            amz_target = self.headers.get("X-Amz-Target", "")
            if ".Put" in amz_target:
                request = json.loads(body)
                records = request.get("Records") or [request.get("Record") or request]
                sizes = [len(base64.b64decode(record.get("Data", ""))) for record in records]
                with _counts_lock:
                    counts["calls"] += 1
                    counts["records"] += len(sizes)
                    counts["bytes"] += sum(sizes)
                    counts["billed_bytes"] += sum(math.ceil(size / BILLING_UNIT) * BILLING_UNIT for size in sizes)
                time.sleep(delay)
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                local.conn = None
                self.send_error(502)
                return
            self.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--delay-ms", type=float, default=300)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.target, args.delay_ms / 1000))
    server.daemon_threads = True

    def finish(*_):
        print(json.dumps(counts), flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, finish)
    server.serve_forever()


if __name__ == "__main__":
    main()
