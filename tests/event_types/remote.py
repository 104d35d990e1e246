"""A local HTTP server that records what is asked of it: shows that registering or checking a schema fetches nothing."""

import http.server
import json
import threading

SECRET = "S3CR3T-wJalrXUtnFEMI-K7MDENG"


class RecordingServer:
    """A local HTTP server answering every GET with a JSON document holding SECRET, and recording the paths."""

    def __init__(self):
        self.paths: list[str] = []
        recorded = self.paths

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                recorded.append(self.path)
                body = json.dumps({"type": "string", "SecretAccessKey": SECRET}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
