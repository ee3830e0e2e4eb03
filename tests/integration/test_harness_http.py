"""The tests' HTTP session (servers.new_session): a closed idle connection is no failure, and
nothing is ever sent twice. Against a tiny server of its own, no Orthanc needed."""
import socket
import threading

import pytest
import requests

from servers import new_session

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


class OneRequestPerConnection:
    """Answers the first request of each connection and keeps it open; a second request on it gets
    the connection closed unanswered, as Orthanc does when its keep-alive timeout strikes."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self.listener.getsockname()[1]
        self.requests = 0
        self.connections = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        answered = False
        buffer = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            if b"\r\n\r\n" not in buffer:
                continue
            buffer = b""
            self.requests += 1
            if answered:
                conn.close()
                return
            conn.sendall(ANSWER)
            answered = True

    def close(self):
        """Stop listening (shutdown wakes the accepting thread) and drop every connection: a dead server."""
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def one_request_server():
    server = OneRequestPerConnection()
    yield server
    server.close()


def test_a_pooled_keep_alive_connection_closed_by_the_server_fails_a_plain_session(one_request_server):
    # The hazard the tests' session avoids (seen as RemoteDisconnected on a GET under load).
    with requests.Session() as session:
        assert session.get(one_request_server.url + "/system", timeout=5).text == "ok"
        with pytest.raises(requests.ConnectionError):
            session.get(one_request_server.url + "/system", timeout=5)


def test_the_tests_session_opens_a_connection_per_request(one_request_server):
    with new_session() as session:
        for _ in range(20):
            assert session.get(one_request_server.url + "/system", timeout=5).text == "ok"
    assert one_request_server.requests == 20, "each request sent once"


def test_a_server_that_died_still_fails_the_request_which_is_sent_once(one_request_server):
    with new_session() as session:
        assert session.get(one_request_server.url + "/system", timeout=5).text == "ok"
        one_request_server.close()
        with pytest.raises(requests.ConnectionError):
            session.post(one_request_server.url + "/instances", data=b"x", timeout=5)
    assert one_request_server.requests == 1


def test_the_tests_session_ignores_proxy_variables(one_request_server, monkeypatch):
    # A proxy variable of the machine's (here one that nothing listens on) must not reroute the
    # harness's requests to its own servers.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with new_session() as session:
        assert session.get(one_request_server.url + "/system", timeout=5).text == "ok"
    assert one_request_server.requests == 1
