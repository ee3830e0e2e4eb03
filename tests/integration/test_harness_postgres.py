"""The tests' PostgreSQL server (postgres.PostgresServer), as the cluster's outage tests use it: a
stop is over when it returns, even when a client holds a connection it never speaks on (a replica
frozen or starved mid-connect), and the server then starts again on its port. No Orthanc needed."""
import os
import signal
import socket
import threading
import time

import pytest

import postgres


@pytest.fixture
def server():
    reason = postgres.unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = postgres.PostgresServer().start()
    yield server
    server.close()


def _child(server, title):
    """The pid of the server's child process whose title starts with `title` ("postgres: checkpointer")."""
    found = [pid for pid, name in server.children().items() if name.startswith(title)]
    assert found, f"no child {title!r} of the postmaster: {server.children()}"
    return found[0]


def test_a_fast_stop_with_a_silent_client_is_over_when_it_returns_and_starts_again(server):
    # A connection opened while the server shuts down gets a child that waits for its startup packet
    # (authentication_timeout, 60 s), and the shutdown waits for that child. A stop that returned
    # then, with the server still up, made the next start fail ("postmaster.pid already exists").
    # The checkpointer, stopped for a moment, holds the shutdown open while the silent client connects.
    port = server.port
    checkpointer = _child(server, "postgres: checkpointer")
    log_start = server._log_size()
    silent = []
    os.kill(checkpointer, signal.SIGSTOP)
    try:
        stopper = threading.Thread(target=server.stop, kwargs={"mode": "fast"})
        stopper.start()
        deadline = time.monotonic() + 30
        while "received fast shutdown request" not in server.log_text(log_start):
            assert time.monotonic() < deadline, "the server never began to shut down"
            time.sleep(0.05)
        for _ in range(3):
            silent.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    finally:
        os.kill(checkpointer, signal.SIGCONT)
    try:
        stopper.join(120)
        assert not stopper.is_alive(), "stop() did not return"
        assert not os.path.exists(os.path.join(server.data_dir, "postmaster.pid")), "the server is still up"
    finally:
        for connection in silent:
            connection.close()
    server.start()
    assert server.port == port
    assert server.psql("SELECT 1").strip() == "1"
