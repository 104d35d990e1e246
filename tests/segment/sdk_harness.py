"""Running the real SDKs for test_sdk_e2e: Node scripts, the docs' web snippets bundled and served, a lossy proxy."""

import functools
import http.client
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from devtools.processes import ROOT

JS = Path(__file__).resolve().parent / "js"  # package.json and package-lock.json: `npm ci` there
NODE_MODULES = JS / "node_modules"
ESBUILD = NODE_MODULES / ".bin" / "esbuild"
SEGMENT_DOC = ROOT / "docs" / "segment.md"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers' /dev/shm is tiny
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    # Every name but the loopback address fails to resolve: an SDK that reached for a
    # CDN or its vendor's servers fails instead of working only with a network.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
# The docs' placeholders, replaced by the test's write key and server.
DOC_WRITE_KEY = "pet_..."
DOC_HOST = "https://events.example.com"


def unavailable(message: str) -> None:
    """Skip the calling test for a missing tool, or fail it in CI, which must have every tool."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_node_modules() -> None:
    """Skip (in CI: fail) unless node and the SDKs' packages are installed."""
    if shutil.which("node") is None:
        unavailable("node is missing (Debian package `nodejs`; .ci/run installs it)")
    if not ESBUILD.exists():
        unavailable(f"{NODE_MODULES} is missing: run `npm ci --ignore-scripts` in {JS} (.ci/run does)")


def require_chromium() -> None:
    """Skip (in CI: fail) unless Debian's chromium is installed."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (Debian package `chromium`; .ci/run installs it)")


def run_node_sdks(url: str, write_key: str) -> dict:
    """Run js/node_sdks.mjs against `url`; return the errors each SDK reported."""
    done = _run(["node", "node_sdks.mjs", url, write_key])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run(command: list[str], *, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run `command` in js/; fail with its output if it fails."""
    done = subprocess.run(command, cwd=JS, input=stdin, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{command[:2]} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def doc_snippet(package: str) -> str:
    """Return the first JavaScript block of docs/segment.md importing `package`: the web game's code as documented."""
    blocks = re.findall(r"```js\n(.*?)```", SEGMENT_DOC.read_text(), flags=re.DOTALL)
    return next(block for block in blocks if f'from "{package}"' in block)


def bundle(source: str, out: Path) -> None:
    """Bundle `source` (JavaScript importing npm packages) for the browser with esbuild into `out`."""
    # Run in js/, where the imports resolve from (node_modules).
    _run([str(ESBUILD), "--bundle", "--format=iife", "--platform=browser", f"--outfile={out}"], stdin=source)


def write_game_page(site: Path, name: str, *, package: str, write_key: str, host: str) -> str:
    """Write `name`.html running the docs' snippet for `package`, sending to `host`; return the page's path."""
    snippet = doc_snippet(package).replace(DOC_WRITE_KEY, write_key).replace(DOC_HOST, host)
    bundle(snippet, site / f"{name}.js")
    (site / f"{name}.html").write_text(f"<!doctype html><title>{name}</title><script src='{name}.js'></script>\n")
    return f"/{name}.html"


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@contextmanager
def static_site(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on a loopback port of its own (the game's origin); yield its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietFiles, directory=str(folder)))
    with _serving(server):
        yield f"http://127.0.0.1:{server.server_port}"


@contextmanager
def _serving(server: ThreadingHTTPServer) -> Iterator[None]:
    """Run `server` on a thread of its own for the block; then stop it and close its socket."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclass
class Exchange:
    """One request the proxy forwarded: what the server answered, and whether the client got that answer."""

    method: str
    path: str
    status: int
    headers: dict
    marked: bool  # the request's body carried the proxy's marker
    lost: bool


# Headers of one connection, never passed on (RFC 9110 7.6.1), and those the proxy's own answer sets.
_NOT_FORWARDED = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade", "server", "date"})


class LossyProxy:
    """Forward every request to `upstream` as it is, but lose the answer to the first post whose body has `marker`.

    A lost answer (the server stored the call, the client got a 502 from the proxy)
    is what makes an SDK send a call again with the same messageId. Preflights pass
    through to the server like any request: the browser's CORS path is the server's.
    """

    def __init__(self, upstream: str, *, marker: bytes):
        self.upstream = upstream
        self.marker = marker
        self._lost_one = False
        self._exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_ProxyHandler, self))
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def record(self, method: str, path: str, body: bytes, status: int, headers: dict) -> Exchange:
        """Record a forwarded request; return it, `lost` if its answer is to be lost."""
        marked = method == "POST" and self.marker in body
        with self._lock:
            lost = marked and not self._lost_one
            self._lost_one = self._lost_one or lost
            exchange = Exchange(method, path, status, headers, marked, lost)
            self._exchanges.append(exchange)
        return exchange

    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._exchanges)

    @contextmanager
    def running(self) -> Iterator["LossyProxy"]:
        """Forward requests for the block; then stop."""
        with _serving(self._server):
            yield self


class _ProxyHandler(BaseHTTPRequestHandler):
    def __init__(self, proxy: LossyProxy, *args, **kwargs):
        self.proxy = proxy
        super().__init__(*args, **kwargs)

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self._forward()

    do_POST = do_PUT = do_OPTIONS = do_GET

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        upstream = urlsplit(self.proxy.upstream)
        connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
        try:
            # The Host header is passed on: the settings the server answers name the proxy.
            headers = {name: value for name, value in self.headers.items() if name.lower() not in _NOT_FORWARDED}
            connection.request(self.command, self.path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
        finally:
            connection.close()
        answer_headers = {name.lower(): value for name, value in answer.getheaders()}
        exchange = self.proxy.record(self.command, urlsplit(self.path).path, body, answer.status, answer_headers)
        if exchange.lost:
            self.send_error(502, "answer lost on the way back")
            return
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in _NOT_FORWARDED:
                self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
