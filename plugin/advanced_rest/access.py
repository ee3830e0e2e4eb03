"""The site's rules decide, wherever a request lands (README, Access).

Sites restrict users at the core's paths (RegisteredUsers, a Lua IncomingHttpRequestFilter, an
authorization plugin). Under {Root}, whatever a route does with the core's data or capabilities is asked
of Orthanc's own HTTP server, at the core path it stands for, as the requester (every header a filter may
read, but those of the connection), so that the core's filters decide:

- `forward`: the operation itself, at the core's path (a core job's JSON, output, action, deletion);
- `check`: a request at that path that changes nothing, whoever serves it there. The plugin's own handler
  (ServeCoreRoutes) answers a request bearing this process's gate token at once, without running
  (web.Router); the core's handler is given what it refuses without acting (an id no job of its has, a
  body that is not JSON).

Refused there (401 or 403): AccessDenied here. A request that reached the plugin through the SDK (Lua,
another plugin) carries no identity and is asked as such.
"""
import contextlib
import hmac
import logging
import secrets
import threading

from .errors import AccessDenied, AccessUnknown

logger = logging.getLogger(__name__)

GATE_HEADER = "x-advanced-rest-gate"
# Headers of the connection or of the body, not of who asks; Accept* would change the answer's form.
NOT_CARRIED = frozenset((
    "host", "content-length", "content-type", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
    "upgrade", "expect", "proxy-connection", "accept", "accept-encoding", GATE_HEADER))
# Requests asking the core at once, as a share of HttpThreadsCount: each holds an HTTP thread and needs a
# second for its loopback request; beyond it a request waits PERMIT_WAIT, then 503.
SHARE = 0.25
PERMIT_WAIT = 2.0  # seconds
NOT_JSON = b"{"  # what a checked POST carries: the core's handler refuses it (400) before doing anything


class OutputTooLarge(Exception):
    """An answer of the loopback longer than the limit asked for (its Content-Length; None: not given), unread."""

    def __init__(self, length):
        super().__init__(length)
        self.length = length


def permits_for(http_threads):
    """How many requests may ask the core through the loopback at once, for `http_threads` HTTP threads."""
    return max(1, int(http_threads * SHARE))


def new_token():
    """A gate token: known to this process only, never logged."""
    return secrets.token_hex(16)


def identity(headers):
    """The headers of a request that say who asks (Authorization, tokens, cookies, forwarded-for...)."""
    return {name: value for name, value in (headers or {}).items()
            if isinstance(name, str) and isinstance(value, str) and name.lower() not in NOT_CARRIED}


class Access:
    """Asks Orthanc's HTTP server, as the requester, what the site's rules allow.

    `loopback(method, path, headers, body, limit)` returns (status, body, Allow) and raises OutputTooLarge,
    TimeoutError or ConnectionError.
    """

    def __init__(self, loopback, token, permits=1, permit_wait=PERMIT_WAIT):
        self._loopback, self._token = loopback, token
        self._permits, self._count, self._permit_wait = threading.BoundedSemaphore(permits), permits, permit_wait

    def is_gate(self, headers):
        """Whether a request is this process's own check (see the module's docstring)."""
        given = (headers or {}).get(GATE_HEADER)
        return isinstance(given, str) and hmac.compare_digest(given.encode("utf-8", "replace"),
                                                              self._token.encode("ascii"))

    @contextlib.contextmanager
    def _permit(self):
        if not self._permits.acquire(timeout=self._permit_wait):
            raise AccessUnknown("%d requests already ask Orthanc's HTTP server for the site's rules (a quarter of "
                                "HttpThreadsCount): try again in a moment" % self._count)
        try:
            yield
        finally:
            self._permits.release()

    def _send(self, method, path, headers, body, limit=None):
        with self._permit():
            try:
                return self._loopback(method, path, headers, body, limit)
            except (TimeoutError, ConnectionError) as error:
                logger.warning("The site's rules for %s %s could not be asked of Orthanc's HTTP server: %s",
                               method, path.split("?")[0], type(error).__name__)
                raise AccessUnknown("Orthanc's HTTP server did not answer whether this user may %s %s"
                                    % (method, path.split("?")[0])) from None

    @staticmethod
    def _refuse_if_denied(status, method, path):
        if status in (401, 403):
            raise AccessDenied("The site's rules refuse this user %s %s (Orthanc answered HTTP %d there), the core "
                               "path this route stands for" % (method, path.split("?")[0], status))

    def forward(self, request, method, path, body=None, limit=None):
        """(status, body, Allow header) of `method path` on the core, done as the requester.

        Raises:
            AccessDenied: the site's rules refuse it. AccessUnknown: no answer. OutputTooLarge: over `limit`.
        """
        answer = self._send(method, path, identity(request.headers), body, limit)
        self._refuse_if_denied(answer[0], method, path)
        return answer

    def check(self, request, method, path):
        """Nothing, if the site's rules allow the requester `method path` (which is not carried out).

        Raises:
            AccessDenied: they refuse it. AccessUnknown: they could not be asked.
        """
        headers = dict(identity(request.headers), **{GATE_HEADER: self._token})
        body = NOT_JSON if method in ("POST", "PUT") else None
        self._refuse_if_denied(self._send(method, path, headers, body)[0], method, path)

    def guard(self, handler, method, path):
        """`handler`, run only once `check(request, method, path)` passed."""
        def guarded(request):
            self.check(request, method, path)
            return handler(request)
        return guarded
