"""webhooks/sender.py against small local servers: TLS is verified, credentials go as Basic, redirects
are failures, and an answer that never comes ends at the deadline."""
import base64
import http.server
import socket
import ssl
import subprocess
import threading
import time

import pytest

from advanced_rest.webhooks import sender


class _Server:
    def __init__(self, handler, context=None):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(status, seen, delay=0.0, location=None):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            time.sleep(delay)
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass
    return Handler


def test_a_2xx_is_delivered_and_credentials_go_as_basic():
    seen = []
    server = _Server(_handler(204, seen))
    try:
        url = "http://user:p%%40ss@127.0.0.1:%d/hook?x=1" % server.port
        assert sender.post(url, '{"a": 1}', {"webhook-id": "msg_1"}, 5) == (204, None)
        headers, body = seen[0]
        assert body == b'{"a": 1}' and headers["webhook-id"] == "msg_1"
        assert headers["Authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
    finally:
        server.close()


def test_a_redirect_is_a_failed_attempt_and_a_refused_connection_is_named():
    seen = []
    server = _Server(_handler(302, seen, location="http://127.0.0.1:1/elsewhere"))
    try:
        assert sender.post("http://127.0.0.1:%d/" % server.port, "{}", {}, 5) == (302, "HTTP 302")
    finally:
        server.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed: nothing listens
    assert sender.post("http://127.0.0.1:%d/" % port, "{}", {}, 5) == (None, "connection refused")


def test_an_answer_that_never_comes_ends_at_the_deadline():
    seen = []
    server = _Server(_handler(200, seen, delay=30))
    try:
        began = time.monotonic()
        status, error = sender.post("http://127.0.0.1:%d/" % server.port, "{}", {}, 1.0)
        assert (status, error) == (None, "timed out after 1 s") and time.monotonic() - began < 5
    finally:
        server.close()


def test_an_untrusted_certificate_is_refused(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    seen = []
    server = _Server(_handler(200, seen), context)
    try:
        status, error = sender.post("https://127.0.0.1:%d/" % server.port, "{}", {}, 5)
        assert status is None and error.startswith("TLS") and "CERTIFICATE_VERIFY_FAILED" in error, error
        assert seen == [], "nothing was sent to a server whose certificate is not trusted"
    finally:
        server.close()


TOKEN = "tok-77e1b0"


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed: nothing listens


@pytest.mark.parametrize("answer, target", [
    (302, "/in/%s?token=%s" % (TOKEN, TOKEN)),  # the redirect's Location names the token too
    (500, "/in/%s?token=%s" % (TOKEN, TOKEN)),
    (None, "/in/%s?token=%s" % (TOKEN, TOKEN)),  # nothing listens
    (None, "/in/%s\r\nX-Injected: %s" % (TOKEN, TOKEN)),  # refused by http.client before sending
], ids=["redirect", "http-500", "refused", "control-characters"])
def test_what_went_wrong_never_names_the_url(answer, target):
    seen, paths = [], []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            paths.append(self.path)
            seen.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(answer)
            self.send_header("Location", "http://127.0.0.1:1%s" % target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass
    server = _Server(Handler) if answer else None
    try:
        port = server.port if server else _closed_port()
        status, error = sender.post("http://u:%s@127.0.0.1:%d%s" % (TOKEN, port, target), "{}", {}, 5)
    finally:
        if server:
            server.close()
    assert error is not None and TOKEN not in error, error
    assert status == answer
    if answer:
        assert paths == [target], "the delivery itself went to the whole URL"
