"""A webhook receiver for the tests: an HTTP server on a loopback port (or a docker network's gateway)
that verifies each delivery with the `standardwebhooks` library, as a user's receiver would, and can be
down, answer errors, or hang."""
import collections
import http.server
import json
import socket
import threading
import time

import standardwebhooks

SECRET = "whsec_" + "dGVzdHMtb2YtYWR2YW5jZWQtcmVzdC13ZWJob29rcw=="  # base64 of a test key


class Receiver:
    """Deliveries received, in arrival order: dicts of id, headers, body (parsed), verified."""

    def __init__(self, host="127.0.0.1", secret=SECRET, port=0):
        self.host, self.secret = host, secret
        self.received = []
        self.answers = collections.deque()  # statuses to answer next (then 200)
        self.hang = 0.0  # seconds each request is held, then dropped unanswered (recorded with status 0)
        self._lock = threading.Condition()
        self._server = None
        self.port = port or _free_port(host)
        self.start()

    @property
    def url(self):
        return "http://%s:%d/hook" % (self.host, self.port)

    def start(self):
        """Listen (again, on the same port)."""
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                data = self.rfile.read(length)
                headers = {key.lower(): value for key, value in self.headers.items()}
                if receiver.hang:
                    receiver._record(headers, data, 0)
                    time.sleep(receiver.hang)
                    self.close_connection = True
                    return
                with receiver._lock:
                    status = receiver.answers.popleft() if receiver.answers else 200
                receiver._record(headers, data, status)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self):
        """Stop listening: connections are refused until `start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _record(self, headers, data, status):
        try:
            verified = standardwebhooks.Webhook(self.secret).verify(data, headers) \
                if self.secret and "webhook-id" in headers else json.loads(data)
            ok = True
        except standardwebhooks.webhooks.WebhookVerificationError:
            verified, ok = json.loads(data), False
        with self._lock:
            self.received.append({"id": headers.get("webhook-id"), "headers": headers, "body": verified,
                                  "verified": ok, "status": status, "at": time.time()})
            self._lock.notify_all()

    def delivered(self):
        """The deliveries answered 2xx, one per webhook-id (the first), in arrival order."""
        with self._lock:
            seen, found = set(), []
            for item in self.received:
                if 200 <= item["status"] < 300 and item["id"] not in seen:
                    seen.add(item["id"])
                    found.append(item)
            return found

    def wait_for(self, predicate, timeout=60, what="deliveries"):
        """Wait until predicate(delivered()) holds; the delivered ones."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.delivered()
            if predicate(found):
                return found
            if time.monotonic() > deadline:
                raise AssertionError("%s never came within %g s; received: %s" % (
                    what, timeout, [(i["body"].get("Event"), i["status"]) for i in self.received]))
            time.sleep(0.05)

    def close(self):
        self.hang = 0
        self.stop()


def _free_port(host):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def events_of(delivered, job_id):
    """The events delivered for one job, in arrival order."""
    return [item["body"]["Event"] for item in delivered if (item["body"].get("Job") or {}).get("ID") == job_id]
