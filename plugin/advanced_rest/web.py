"""Routing, JSON in and out, and the one place where errors become HTTP answers."""
import dataclasses
import itertools
import json
import logging
import re
import time
import urllib.parse

from .errors import HTTP_REASONS, AdvancedRestError, BadRequest, CrossSiteRefused, MethodNotAllowed

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Request:
    """One HTTP request as the Python plugin hands it over."""

    method: str
    uri: str
    groups: tuple = ()
    get: dict = dataclasses.field(default_factory=dict)
    headers: dict = dataclasses.field(default_factory=dict)
    body: bytes = b""


@dataclasses.dataclass(frozen=True)
class Response:
    """A successful answer."""

    body: bytes
    mime: str = "application/json"
    headers: dict = None  # more headers of the answer (the jobs page's Content-Security-Policy)


@dataclasses.dataclass(frozen=True)
class Redirect:
    """A 301 to `location` (Orthanc's SDK sends no other redirection)."""

    location: str


_SCALARS = (str, int, float, bool, type(None))
_scalar = json.JSONEncoder(ensure_ascii=False).encode  # the C encoder (indent would make it Python's)


def json_response(value):
    """`value` as the core formats JSON answers (keys sorted, 3-space indent)."""
    if type(value) is dict and value and all(type(key) is str and type(item) in _SCALARS
                                             for key, item in value.items()):
        # A flat object (create-dicom's answer, a job's ID and Path): the same text, by the C encoder.
        lines = ",\n".join("   %s : %s" % (_scalar(key), _scalar(value[key])) for key in sorted(value))
        return Response(("{\n" + lines + "\n}").encode("utf-8"))
    return Response(json.dumps(value, indent=3, separators=(",", " : "), sort_keys=True,
                               ensure_ascii=False).encode("utf-8"))


def error_body(error, method, uri):
    """The core's JSON error document for `error` on `method uri`."""
    status = error.http_status
    document = {
        "HttpError": HTTP_REASONS.get(status, "Error"),
        "HttpStatus": status,
        "Message": error.message,
        "Method": method,
        "OrthancError": error.message,
        "OrthancStatus": error.code,
        "Uri": uri,
    }
    if error.details:
        document["Details"] = error.details
    return json.dumps(document, indent="\t", separators=(",", " : "), sort_keys=True).encode("utf-8")


# The group a route pattern matches one path segment with (an id, an output name). A route may
# narrow a segment with another group (the plugin's job ids, a fixed word): each counts as one.
GROUP = "([^/]+)"


def query_number(get, name, default, kind, lowest, highest):
    """The query parameter `name` as `kind` (int or float) within [lowest, highest], or `default`.

    Raises:
        BadRequest: not a number, or out of the range.
    """
    if name not in get:
        return default
    try:
        value = kind(get[name])
    except ValueError:
        raise BadRequest("%s must be a number, not %r" % (name, get[name])) from None
    if not lowest <= value <= highest:
        raise BadRequest("%s must be between %s and %s" % (name, lowest, highest))
    return value
_GROUP = re.compile(r"\((?!\?)[^()]*\)")


def route_path(pattern, names):
    """The path of a route `pattern` for people: each group replaced by the next of `names`, escapes removed."""
    names = iter(names)
    return _GROUP.sub(lambda _: next(names), pattern).replace("\\", "")


def route_label(pattern):
    """A route's name for metrics: its pattern with each group shown as {} (e.g. /jobs/{}/{})."""
    return route_path(pattern, itertools.repeat("{}"))


def _arguments(get):
    # Some Orthanc versions (1.10) hand GET arguments over still percent-encoded.
    return {key: urllib.parse.unquote(value) if "%" in value else value for key, value in get.items()}


SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))


def cross_site(method, headers, trusted=()):
    """Why a browser's request is a cross-site one that must not change anything, or None.

    The rule of Go's net/http CrossOriginProtection: a browser says where a request comes from in
    Sec-Fetch-Site (every current browser) or, before that, in Origin; a request with neither comes
    from a script or curl and goes through. `headers` have lower-case names (as Orthanc hands them).
    """
    if method in SAFE_METHODS:
        return None
    origin = headers.get("origin")
    if origin is not None and origin.lower() in trusted:
        return None
    site = headers.get("sec-fetch-site")
    if site is not None:
        return None if site in ("same-origin", "none") else "Sec-Fetch-Site: %s" % site
    if origin is None:
        return None
    if origin == "null" or urllib.parse.urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
        return "its Origin is not this server's"
    return None


@dataclasses.dataclass(frozen=True)
class Transport:
    """The few calls answering needs; host.py provides the real ones, tests fakes."""

    answer: object  # (output, body bytes, mime[, headers dict])
    send_status: object  # (output, status, body bytes, headers dict)
    method_not_allowed: object  # (output, "GET,POST")
    register: object  # (pattern, callback)
    redirect: object = None  # (output, location): a 301


class Router:
    """Registers routes and wraps each handler so that no exception reaches Orthanc."""

    def __init__(self, transport, observe=None, after_large=None, large=16 * 1024 * 1024, is_gate=None,
                 trusted_origins=()):
        self._transport = transport
        self._trusted = frozenset(trusted_origins)  # origins whose cross-site requests may change things
        # (headers) -> bool: a check of the plugin's own (access.py), answered {} at once: the site's filters
        # let it reach this route, which is all it asks. Not counted in the metrics: no client sent it.
        self._is_gate = is_gate
        self._after_large, self._large = after_large, large  # () -> None once a large body was answered
        self._observe = observe  # (route label, method, status, seconds), after each answer
        self.registered = []  # (pattern, methods), in registration order

    def add(self, pattern, handlers):
        """Serve `pattern` with `handlers`, a dict method -> handler(Request) -> Response."""
        self.registered.append((pattern, sorted(handlers)))
        self._transport.register(pattern, self._callback(handlers, route_label(pattern)))

    def _callback(self, handlers, route):
        observe = self._observe

        def callback(output, uri, **request):
            if self._is_gate is not None and self._is_gate(request.get("headers") or {}):
                self._send(lambda: self._transport.answer(output, b"{}", "application/json"), 200)
                return
            began = time.perf_counter()
            status = self._answer(handlers, output, uri, request)
            if self._after_large is not None and len(request.get("body") or b"") >= self._large:
                self._after_large()
            if observe is not None:
                try:
                    observe(route, request.get("method", ""), status, time.perf_counter() - began)
                except Exception:
                    logger.exception("Observing %s failed", route)

        return callback

    def _answer(self, handlers, output, uri, request):
        """Serve one request; the HTTP status answered."""
        transport = self._transport
        allowed = ",".join(sorted(handlers))
        method = request.get("method", "")
        try:
            handler = handlers.get(method)
            if handler is None:
                transport.method_not_allowed(output, allowed)
                return 405
            refused = cross_site(method, request.get("headers") or {}, self._trusted)
            if refused is not None:
                raise CrossSiteRefused("A cross-site request from a browser (%s) may not change anything here; "
                                       "AdvancedRest.TrustedOrigins names origins that may" % refused)
            response = handler(Request(method, uri, tuple(request.get("groups", ())),
                                       _arguments(request.get("get", {})), request.get("headers", {}),
                                       request.get("body", b"")))
        except MethodNotAllowed as error:
            transport.method_not_allowed(output, error.allowed)
            return 405
        except AdvancedRestError as error:
            # Details may quote the request's values (patient data): DEBUG only.
            logger.info("%s %s: HTTP %d, Orthanc error %s", method, uri, error.http_status, error.code)
            logger.debug("%s %s: %s", method, uri, error.details or "")
            headers = {}
            if getattr(error, "retry_after", None):
                headers["Retry-After"] = str(error.retry_after)
            return self._send(lambda: transport.send_status(output, error.http_status,
                                                            error_body(error, method, uri), headers),
                              error.http_status)
        except Exception:  # any bug answers 500, never crashes Orthanc's thread
            logger.exception("Unexpected error on %s %s", method, uri)
            error = AdvancedRestError("Unexpected error in the advanced-rest plugin, see Orthanc's log")
            return self._send(lambda: transport.send_status(output, 500, error_body(error, method, uri), {}), 500)
        if isinstance(response, Redirect):
            return self._send(lambda: transport.redirect(output, response.location), 301)
        if response.headers:
            return self._send(lambda: transport.answer(output, response.body, response.mime, response.headers), 200)
        return self._send(lambda: transport.answer(output, response.body, response.mime), 200)

    @staticmethod
    def _send(send, status):
        """Send an answer; a client gone meanwhile (a long wait given up) is not an error."""
        try:
            send()
        except Exception as exc:
            logger.info("Could not send the answer (HTTP %d), the client may be gone: %s", status,
                        type(exc).__name__)
        return status
