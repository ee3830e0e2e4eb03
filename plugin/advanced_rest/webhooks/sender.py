"""One HTTP POST of a delivery: (status, error), never raising, within one overall deadline.

TLS is verified with the system's CAs and the host name; redirects are not followed (a 3xx is a failed
attempt, as any answer but a 2xx); credentials in the URL go as HTTP Basic. The deadline covers
connecting, sending and the answer's status line and headers (the socket is shut when it passes);
resolving the host name is the one step it cannot cut short.
"""
import base64
import http.client
import socket
import ssl
import threading
import time
import urllib.parse

_CONTEXT = None


def _context():
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = ssl.create_default_context()  # the system's CAs, host name checked
    return _CONTEXT


def post(url, text, headers, timeout):
    """POST `text` to `url`: (HTTP status or None, None on a 2xx or else what went wrong, in words that
    name no request value), within `timeout` seconds in all."""
    parts = urllib.parse.urlsplit(url)
    headers = dict(headers)
    if parts.username is not None:
        credentials = "%s:%s" % (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    try:
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=_context())
        else:
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    except (ValueError, http.client.HTTPException) as error:
        return None, type(error).__name__
    expired = threading.Event()

    def cut():
        expired.set()
        sock = connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    watchdog = threading.Timer(timeout, cut)
    watchdog.daemon = True
    began = time.monotonic()
    watchdog.start()
    try:
        connection.request("POST", target, body=text.encode("utf-8"), headers=headers)
        status = connection.getresponse().status  # the status line and headers; the body is not read
    except (socket.timeout, TimeoutError):
        return None, "timed out after %g s" % timeout
    except (OSError, http.client.HTTPException, ValueError) as error:
        if expired.is_set() or time.monotonic() - began >= timeout:
            return None, "timed out after %g s" % timeout
        return None, _reason(error)
    finally:
        watchdog.cancel()
        connection.close()
    if expired.is_set():
        return None, "timed out after %g s" % timeout
    if 200 <= status < 300:
        return status, None
    return status, "HTTP %d" % status


def _reason(error):
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ssl.SSLError):
        return "TLS: %s" % (getattr(error, "reason", None) or type(error).__name__)
    if isinstance(error, socket.gaierror):
        return "host name not resolved"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return type(error).__name__
