"""One HTTP POST of a delivery: (status, error), never raising. TLS is verified with the system's CAs;
redirects are not followed (a 3xx is a failed attempt, as any answer but a 2xx)."""
import http.client
import socket
import ssl
import urllib.error
import urllib.request

ANSWER_READ = 65536  # bytes of a receiver's answer read (and dropped) before the connection closes


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_CONTEXT = None


def _context():
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = ssl.create_default_context()  # the system's CAs, hostname checked
    return _CONTEXT


def post(url, text, headers, timeout):
    """POST `text` to `url`: (HTTP status or None, None on a 2xx or else what went wrong, in words
    that name no request value)."""
    request = urllib.request.Request(url, data=text.encode("utf-8"), headers=headers, method="POST")
    opener = urllib.request.build_opener(_NoRedirect(), urllib.request.HTTPSHandler(context=_context()))
    try:
        with opener.open(request, timeout=timeout) as answer:
            answer.read(ANSWER_READ)
            status = answer.status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code, "HTTP %d" % error.code
    except urllib.error.URLError as error:
        return None, _reason(error.reason)
    except (socket.timeout, TimeoutError):
        return None, "timed out after %g s" % timeout
    except (OSError, http.client.HTTPException, ValueError) as error:
        return None, _reason(error)
    if 200 <= status < 300:
        return status, None
    return status, "HTTP %d" % status


def _reason(reason):
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, ssl.SSLError):
        return "TLS: %s" % (getattr(reason, "reason", None) or type(reason).__name__)
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return type(reason).__name__
