"""The one module that imports `orthanc`: version-neutral calls into the Orthanc server.

Everything else receives the values and callables defined here, so that the rest
of the package runs (and is unit-tested) without Orthanc.
"""
import base64
import http.client
import json
import logging
import re
import secrets
import ssl
import sys
import threading
import time

import orthanc

from . import gil, references
from .access import OutputTooLarge
from .errors import OrthancError

logger = logging.getLogger(__name__)


def _raise_orthanc(exc, what):
    """Re-raise an `orthanc.OrthancException` as our OrthancError (args: code, description)."""
    code = -1
    if exc.args and isinstance(exc.args[0], int):
        code = exc.args[0]
    raise OrthancError(what, code=code) from exc


def rest_get(uri):
    """GET on Orthanc's REST API (plugins' routes included); bytes."""
    try:
        return orthanc.RestApiGet(uri)
    except orthanc.OrthancException as exc:
        _raise_orthanc(exc, uri)


def rest_post(uri, body):
    """POST `body` (bytes or str) on Orthanc's REST API; bytes."""
    try:
        return orthanc.RestApiPost(uri, body)
    except orthanc.OrthancException as exc:
        _raise_orthanc(exc, uri)


def rest_put(uri, body):
    """PUT `body` (bytes or str) on Orthanc's REST API."""
    try:
        orthanc.RestApiPut(uri, body)
    except orthanc.OrthancException as exc:
        _raise_orthanc(exc, uri)


def rest_delete(uri):
    """DELETE on Orthanc's REST API; raises OrthancError if it fails."""
    try:
        orthanc.RestApiDelete(uri)
    except orthanc.OrthancException as exc:
        _raise_orthanc(exc, uri)


def rest_get_json(uri):
    """GET on Orthanc's REST API, parsed as JSON."""
    return json.loads(rest_get(uri))


class Loopback:
    """Requests to Orthanc's own HTTP server, on loopback: where the core's filters (RegisteredUsers, a Lua
    filter, an authorization plugin) decide, and the core catches whatever it throws while it answers (an
    error answer), unlike a call through the SDK (see README, Architecture and Access).

    Port from HttpPort, https when SslEnabled (no certificate check: it is this server). Each request
    carries the headers it is given: the requester's identity, or (`background`) the plugin's own, Basic
    credentials of AdvancedRest.LoopbackUser (none when unset: never silently the first registered user).
    `enabled` is False when Orthanc's HTTP server is off: nothing is ever sent then. Idle keep-alive
    connections are reused, one request per connection at a time.
    """

    KEPT_IDLE = 8  # idle connections kept for reuse

    def __init__(self, config, user="", timeout=10.0):
        port = config.get("HttpPort", 8042)
        self._port = int(port) if isinstance(port, (int, str)) and str(port).isdigit() else 8042
        self.enabled = config.get("HttpServerEnabled", True) is not False
        self._timeout = timeout
        self._context = None
        if config.get("SslEnabled") is True:
            self._context = ssl.create_default_context()
            self._context.check_hostname = False
            self._context.verify_mode = ssl.CERT_NONE
        self.background = {}
        users = config.get("RegisteredUsers")
        if user and isinstance(users, dict) and isinstance(users.get(user), str):
            token = base64.b64encode(("%s:%s" % (user, users[user])).encode("utf-8")).decode("ascii")
            self.background["Authorization"] = "Basic " + token
        self._idle = []
        self._lock = threading.Lock()

    def _connect(self):
        if self._context is not None:
            return http.client.HTTPSConnection("127.0.0.1", self._port, timeout=self._timeout,
                                               context=self._context)
        return http.client.HTTPConnection("127.0.0.1", self._port, timeout=self._timeout)

    def get(self, path):
        """(HTTP status, body bytes) of GET `path` (already percent-encoded) as the plugin's own user."""
        status, body, _ = self.request("GET", path, self.background)
        return status, body

    def request(self, method, path, headers, body=None, limit=None):
        """(HTTP status, body bytes, Allow header or "") of `method path` (already percent-encoded) with `headers`.

        Raises:
            OutputTooLarge: a 200 answer of more than `limit` bytes (not read).
            TimeoutError: no answer within the timeout (Orthanc's HTTP threads all busy?).
            ConnectionError: it cannot be reached (refused, TLS, a broken answer), or the HTTP server is off.
        """
        if not self.enabled:
            raise ConnectionError("Orthanc's HTTP server is off (HttpServerEnabled)")
        headers = dict(headers, **{"User-Agent": "advanced-rest-loopback", "Accept": "application/json"})
        with self._lock:
            connection, reused = (self._idle.pop(), True) if self._idle else (self._connect(), False)
        try:
            try:
                status, data, allow, keep = self._exchange(connection, method, path, headers, body, limit)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if not reused:
                    raise
                connection.close()  # an idle connection the server closed meanwhile: again on a new one
                connection = self._connect()
                status, data, allow, keep = self._exchange(connection, method, path, headers, body, limit)
        except (TimeoutError, OutputTooLarge):
            connection.close()
            raise
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise ConnectionError("%s: %s" % (type(error).__name__, error)) from error
        with self._lock:
            kept = keep and len(self._idle) < self.KEPT_IDLE
            if kept:
                self._idle.append(connection)
        if not kept:
            connection.close()
        return status, data, allow

    @staticmethod
    def _exchange(connection, method, path, headers, body, limit):
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        if limit is not None and answer.status == 200:
            length = answer.getheader("Content-Length")
            if length is None or not length.isdigit() or int(length) > limit:
                raise OutputTooLarge(int(length) if length and length.isdigit() else None)
        data = answer.read()
        return answer.status, data, answer.getheader("Allow") or "", not answer.will_close


def configuration():
    """Orthanc's whole configuration (all files merged) as a dict."""
    return json.loads(orthanc.GetConfiguration())


def command_line_arguments():
    """Orthanc's command-line arguments (without the executable)."""
    count = orthanc.GetCommandLineArgumentsCount()
    return [orthanc.GetCommandLineArgument(i) for i in range(1, count)]


def python_plugin_version():
    """Version of Orthanc's Python plugin, e.g. "4.0" or "7.1" ("" when unknown)."""
    try:
        return rest_get_json("/plugins/python").get("Version", "")
    except (OrthancError, ValueError):
        return ""


def runtime_versions():
    """Versions of the pieces the plugin runs on, for diagnostics."""
    info = json.loads(rest_get("/system"))
    return {
        "Orthanc": info.get("Version", ""),
        "PythonPlugin": python_plugin_version(),
        "Python": "%d.%d.%d" % sys.version_info[:3],
    }


# ---- answers -------------------------------------------------------------------

class _StatusSender:
    """Sends a status with a body; `RestOutput.SendHttpStatus` changed signature in 4.2.

    Plugin 4.0-4.1 take (status, str, length); 4.2+ take (status, bytes). The first
    call finds out which one this plugin accepts (a wrong signature raises TypeError
    before anything is sent) and keeps it.
    """

    def __init__(self):
        self._variant = None

    def __call__(self, output, status, body, headers=None):
        for name, value in (headers or {}).items():
            output.SetHttpHeader(name, value)
        if self._variant is None:
            for variant in (self._bytes, self._legacy):
                try:
                    variant(output, status, body)
                except TypeError:
                    continue
                self._variant = variant
                return
            raise RuntimeError("RestOutput.SendHttpStatus accepts no known signature")
        self._variant(output, status, body)

    @staticmethod
    def _bytes(output, status, body):
        output.SendHttpStatus(status, body)

    @staticmethod
    def _legacy(output, status, body):
        text = body.decode("utf-8", "replace")
        output.SendHttpStatus(status, text, len(text.encode("utf-8")))


send_status = _StatusSender()


def answer(output, body, mime, headers=None):
    """200 with `body` (bytes) of type `mime`, and `headers`."""
    for name, value in (headers or {}).items():
        output.SetHttpHeader(name, value)
    output.AnswerBuffer(body, mime)


def redirect(output, location):
    """301 to `location` (307 from Orthanc 1.12: its Redirect)."""
    output.Redirect(location)


def method_not_allowed(output, allowed):
    """405 with the Allow header (the core refuses 405 through SendHttpStatus)."""
    output.SendMethodNotAllowed(allowed)


def register_route(pattern, callback):
    """Serve `pattern` (a regular expression on the URI) with `callback(output, uri, **request)`.

    Before the callback runs, what the Python plugin keeps of its arguments is given back, once the
    self-test has proven it on this build (`test_references`).
    """
    def route(output, uri, **request):
        _REFERENCES.arrived(uri, request)
        callback(output, uri, **request)

    orthanc.RegisterRestCallback(pattern, route)


# ---- what Python plugin 4.0 keeps of a REST callback's arguments (references.py) -----------------

def _reference_calls():
    """(Py_DecRef, Py_IncRef) of the interpreter Orthanc embeds, through ctypes.

    Raises:
        OSError, AttributeError: its C API cannot be reached.
    """
    import ctypes

    api = ctypes.PyDLL(None)  # the plugin loads libpython with RTLD_GLOBAL: its symbols are the process's
    calls = []
    for name in ("Py_DecRef", "Py_IncRef"):
        function = getattr(api, name)
        function.argtypes, function.restype = [ctypes.py_object], None
        calls.append(function)
    return tuple(calls)


class _References:
    """Gives back, before each callback, the reference the Python plugin keeps of each argument, once
    proven; the self-test's probe route and its decision.

    The probe (GET with a query, POST with a body) goes through the SDK (`RestApiGetAfterPlugins`, the
    calls that reach plugins' routes) to a route of this module, registered like every other one, so
    that the counts it measures at arrival are those of any route. The probe runs once with nothing
    given back, to prove what is kept (references.decide), then once giving back, to check that this
    restores exactly a plugin that keeps nothing; only then is it done for every request. A plugin that
    keeps nothing (4.1 and later) is never touched.
    """

    PROBE = "/self-test/references/"

    def __init__(self):
        self.kept = {}  # kind -> count at arrival of an object the plugin keeps; empty: nothing is given back
        self._path = None  # the probe route's path, {Root}/self-test/references/ (None: not registered)
        self._probe = None  # the uri of the probe's requests while they run
        self._probe_kept = {}  # what the probe's requests give back (the check)
        self._arrivals = []  # references.Record of each probe request
        self._decref = self._incref = None

    def register(self, root):
        """Serve the probe route under `root` (it answers 404 but to the probe's own requests)."""
        self._path = root + self.PROBE
        register_route(re.escape(self._path) + "([0-9a-f]{32})", self._answer)

    def arrived(self, uri, request):
        """Give back what is kept of this request's arguments (at arrival, the counts being the probe's)."""
        probe = self._probe
        kept = self._probe_kept if probe is not None and uri == probe else self.kept
        if not kept and (probe is None or uri != probe):
            return
        try:
            measured = references.measure(uri, request)
            for obj in references.releasable(measured, kept):
                self._decref(obj)
            if probe is not None and uri == probe:
                self._arrivals.append(references.Record(uri, dict(request), measured))
        except Exception:  # never in a request's way: keep what is kept from now on
            self.kept = {}
            logger.exception("Giving back the Python plugin's references failed: stopped")

    def _answer(self, output, uri, **request):
        if self._probe is not None and uri == self._probe:
            output.AnswerBuffer(b"", "text/plain")
        else:
            output.SendHttpStatusCode(404)

    def _run_probe(self, kept):
        """references.extras of the probe's two requests, `kept` being given back meanwhile.

        Raises:
            RuntimeError: a probe request did not reach the probe route.
        """
        uri = self._path + secrets.token_hex(16)
        self._arrivals, self._probe_kept, self._probe = [], kept, uri
        try:
            orthanc.RestApiGetAfterPlugins(uri + "?probe=" + secrets.token_hex(8))
            orthanc.RestApiPostAfterPlugins(uri, ("probe body " + secrets.token_hex(8)).encode("ascii"))
        finally:
            self._probe, self._probe_kept = None, {}
        records, self._arrivals = self._arrivals, []
        if len(records) != 2:
            raise RuntimeError("%d of the 2 probe requests reached the probe route" % len(records))
        token = secrets.token_hex(8)
        samples = []
        for record in records:
            samples += references.extras(record, references.control(record, lambda i: "%s.%d" % (token, i)))
        return samples

    def test(self):
        """Decide, once, whether to give back references (logged at WARNING, the decision in one line)."""
        if self._path is None:
            return
        decision = "Self-test of the REST callbacks' references: %s"
        try:
            kept, problem = references.decide(self._run_probe({}))
            if problem is not None:
                logger.warning(decision, problem + ": nothing given back")
                return
            if not kept:
                logger.warning(decision, "no argument kept, nothing given back")
                return
            self._decref, self._incref = _reference_calls()
            wrong = references.check(self._run_probe(kept))
            if wrong:
                for kind, obj, _, extra in wrong:
                    if extra == -1:  # one given back too many: still held by the probe, restored
                        self._incref(obj)
                logger.error(decision, "giving back leaves %s: nothing given back"
                             % ", ".join("%s %+d" % (kind, extra) for kind, _, _, extra in wrong))
                return
            self.kept = kept
            logger.warning(decision, "the Python plugin keeps one reference to each %s: given back before "
                           "each request" % references.describe(kept))
        except Exception as error:
            logger.exception(decision, "it could not run (%s: %s): nothing given back" % (type(error).__name__, error))


_REFERENCES = _References()


def register_reference_test(root):
    """Serve the references self-test's probe route under `root` (at load: routes are registered then)."""
    _REFERENCES.register(root)


def test_references():
    """Run the references self-test, once: at ORTHANC_STARTED (the SDK's REST calls fail while plugins
    load). Requests served before it are handled as the Python plugin does alone."""
    _REFERENCES.test()


# ---- whether calls into Orthanc keep the GIL (gil.py) -------------------------------------------

def _gil_trial():
    """One gil.Trial: the clocks around a call into Orthanc (GET /system, the core's), and the clock of a
    thread that asked for the GIL while this one held it in C just before that call.

    The hold (libc's usleep through ctypes.PyDLL, which keeps the GIL) lasts several switch intervals, so
    that the waiting thread has asked for a switch by then: a call that lets the GIL go must hand it over
    before going on (CPython's forced switching), and the waiter runs during the call. The steps are chained
    by C code alone (map over C callables), so no Python code, which could hand the GIL over, runs between
    the hold and the end of the call.
    """
    import ctypes
    import functools
    import operator

    hold = ctypes.PyDLL(None).usleep
    hold.argtypes, hold.restype = [ctypes.c_uint], ctypes.c_int
    gate, noted = threading.Lock(), []
    gate.acquire()

    def waiter():
        with gate:
            noted.append(time.perf_counter())

    thread = threading.Thread(target=waiter, name="advanced-rest-gil-probe", daemon=True)
    thread.start()
    time.sleep(0.005)  # the waiter blocks on the gate (it would ask for the GIL anyway once the gate opens)
    micros = int(1e6 * max(0.02, 4 * sys.getswitchinterval()))
    steps = (gate.release, functools.partial(hold, micros), time.perf_counter,
             functools.partial(orthanc.RestApiGet, "/system"), time.perf_counter)
    try:
        _, _, before, _, after = list(map(operator.methodcaller("__call__"), steps))
    finally:
        thread.join(2.0)  # the gate is open: its first step
    return gil.Trial(before, noted[0] if noted else None, after)


def sdk_keeps_gil():
    """True if calls into Orthanc keep the GIL here (Python plugin before 4.3, or Python.AllowThreads off),
    False if they release it, None if the probe could not tell (then logged here at WARNING).

    Run once at ORTHANC_STARTED, before the plugin's own threads start (the SDK's calls fail while plugins
    load)."""
    trials = []
    try:
        for _ in range(gil.TRIALS):
            trials.append(_gil_trial())
            if gil.decide(trials) == gil.RELEASED:
                break
        decision = gil.decide(trials)
    except Exception as error:
        logger.warning("Self-test of the GIL during calls into Orthanc could not run (%s: %s)",
                       type(error).__name__, error)
        return None
    if decision is None:
        logger.warning("Self-test of the GIL during calls into Orthanc: undecided after %d trials", len(trials))
        return None
    return decision == gil.KEPT


# ---- logging -------------------------------------------------------------------

class _OrthancLogHandler(logging.Handler):
    def emit(self, record):
        try:
            text = self.format(record)
            if record.levelno >= logging.ERROR:
                orthanc.LogError(text)
            elif record.levelno >= logging.WARNING:
                orthanc.LogWarning(text)
            else:
                orthanc.LogInfo(text)
        except Exception:  # logging must never raise into Orthanc
            self.handleError(record)


def log_error(text):
    """One line in Orthanc's log at ERROR level (used before logging is set up, e.g. by entrypoint.py)."""
    orthanc.LogError(text)


def install_logging():
    """Forward the `advanced_rest` logger (only) to Orthanc's log."""
    root = logging.getLogger("advanced_rest")
    if not any(isinstance(h, _OrthancLogHandler) for h in root.handlers):
        handler = _OrthancLogHandler()
        handler.setFormatter(logging.Formatter("advanced-rest: %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False


# ---- changes, properties ---------------------------------------------------------

def register_on_change(handlers):
    """Route Orthanc's change events to `handlers`: change name -> callable(resource id).

    Names are ChangeType members (ORTHANC_STARTED, ORTHANC_STOPPED, JOB_SUCCESS...). Only
    one on-change callback exists per interpreter, so every feature goes through here.
    The callback runs on Orthanc's change thread; a failing handler is logged, never raised.
    """
    by_value = {}
    for name, handler in handlers.items():
        value = getattr(orthanc.ChangeType, name, None)
        if value is None:
            logger.warning("This Orthanc reports no %s changes", name)
            continue
        by_value.setdefault(int(value), []).append((name, handler))

    def on_change(change_type, level, resource):
        for name, handler in by_value.get(int(change_type), ()):
            try:
                handler(resource)
            except Exception:
                logger.exception("Handling the %s change failed", name)

    orthanc.RegisterOnChangeCallback(on_change)


def get_global_property(identifier, default=""):
    """A global property of this Orthanc server (a string)."""
    return orthanc.GetGlobalProperty(identifier, default)


def set_global_property(identifier, value):
    """Store a global property of this Orthanc server."""
    orthanc.SetGlobalProperty(identifier, value)


# ---- metrics and stored instances -------------------------------------------------

class MetricsSwitch:
    """Orthanc's metrics switch (MetricsEnabled, PUT /tools/metrics), read at most once a second."""

    def __init__(self, ttl=1.0):
        self._ttl, self._value, self._read_at = ttl, True, -1e9

    def __call__(self):
        now = time.monotonic()
        if now - self._read_at > self._ttl:
            try:
                self._value = rest_get("/tools/metrics").strip() != b"0"
            except OrthancError:
                self._value = True
            self._read_at = now
        return self._value


def set_metric(name, value):
    """Push a value into Orthanc's own metrics (float32, no HELP/TYPE: the SDK has none)."""
    orthanc.SetMetricsValue(name, float(value), orthanc.MetricsType.DEFAULT)
