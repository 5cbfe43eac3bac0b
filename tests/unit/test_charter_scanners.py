"""The TLS scanner and the browser check fail on a deliberately bad local server.

Real tools against real servers on 127.0.0.1 (no lab needed): openssl s_server offering
only TLS 1.0/1.1 for sslyze, and a page loading a third-party script and setting an
insecure cookie for Chromium. Nothing leaves this machine: the browser check aborts
requests to other origins and maps every other name to nowhere.
"""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.port_support import free_port, wait_for_port

from educloud.charter import browser, tls


@pytest.fixture
def old_tls_server(tmp_path: Path) -> Iterator[int]:
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
         "-subj", "/CN=old.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert), "-key",
         str(key), "-no_tls1_2", "-no_tls1_3", "-cipher", "ALL:@SECLEVEL=0", "-www", "-quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_tls_scan_fails_on_old_protocols(old_tls_server: int) -> None:
    verdict = tls.scan("old.test", "127.0.0.1", None, port=old_tls_server)
    assert "TLSv1.2" not in verdict.accepted_versions
    assert verdict.problems, "an old-protocol server passed the Mozilla intermediate check"


PAGE = b"""<!DOCTYPE html><html lang="fr"><head>
<script src="https://cdn.tracker.example/pixel.js"></script></head>
<body><img src="https://ads.example.net/banner.png">bonjour</body></html>"""


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Set-Cookie", "session=1; Path=/")  # no Secure
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(not Path(browser.CHROMIUM).exists(), reason="chromium not installed")
def test_browser_check_catches_third_party_requests_and_insecure_cookie() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (visit,) = browser.visit_pages([f"http://page.test:{port}/"], {"page.test": "127.0.0.1"})
    finally:
        server.shutdown()
    assert browser.third_party_requests(visit, ["page.test"]) == [
        "https://cdn.tracker.example/pixel.js",
        "https://ads.example.net/banner.png",
    ]
    assert browser.cookie_problems(visit, ["page.test"]) == [
        "cookie session (page.test) lacks Secure"
    ]
