"""The `AdvancedRest` section of Orthanc's configuration, read once into frozen settings."""
import base64
import dataclasses
import logging
import os
import re
import urllib.parse

logger = logging.getLogger(__name__)

ORTHANC_HTTP_THREADS = 50  # Orthanc's default HttpThreadsCount
_ROOT_PATTERN = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")
_KINDS = {bool: "a Boolean", int: "an integer", float: "a number", str: "a string", list: "a list of strings"}


@dataclasses.dataclass(frozen=True)
class Option:
    """One option of the AdvancedRest section, declared once: parsing, Settings' defaults and the README's
    tables of options (checked by tests/unit/test_settings.py) follow from it."""

    name: str  # its key; "Cluster.LeaseSeconds" is LeaseSeconds inside AdvancedRest.Cluster
    kind: type  # bool, int, float (any JSON number but a Boolean) or str
    default: object  # without the option (and, with `orthanc`, without Orthanc's own option)
    meaning: str
    table: str  # the README table listing it: "Configuration", "Limits" or "Cluster"
    attribute: str = None  # the Settings field it sets (None: derived, see from_configuration)
    minimum: object = None  # inclusive bounds
    maximum: object = None
    above: object = None  # exclusive bounds
    below: object = None
    orthanc: str = None  # Orthanc's own option of the same meaning, whose value is the default
    why: str = ""  # told with a value beyond the bounds

    def check(self, value):
        """Why `value` is not acceptable, or None."""
        if self.kind is float:
            right_kind = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif self.kind is int:
            right_kind = isinstance(value, int) and not isinstance(value, bool)  # bool is an int in Python
        elif self.kind is list:  # of strings, or of integers when its default is
            item_kind = type(self.default[0]) if self.default else str
            right_kind = isinstance(value, list) and all(isinstance(item, item_kind) and not isinstance(item, bool)
                                                         for item in value)
        else:
            right_kind = isinstance(value, self.kind)
        if not right_kind:
            return "must be %s, not %r" % (_KINDS[self.kind], value)
        if (self.minimum is not None and value < self.minimum) or (self.above is not None and value <= self.above) \
                or (self.maximum is not None and value > self.maximum) or (self.below is not None and value >= self.below):
            return "must be %s, not %r%s" % (self.bounds(), value, (": " + self.why) if self.why else "")
        return None

    def bounds(self):
        """The accepted values, in words."""
        low = "above %s" % self.above if self.above is not None else \
            "at least %s" % self.minimum if self.minimum is not None else None
        high = "below %s" % self.below if self.below is not None else \
            "at most %s" % self.maximum if self.maximum is not None else None
        return " and ".join(part for part in (low, high) if part)


MIB = 1024 * 1024
# Orthanc's error codes retried by default: NetworkProtocol (a modality or peer that refuses or drops the
# connection, an HTTP error of a peer), Timeout, DatabaseUnavailable.
DEFAULT_RETRIED_CODES = (9, 16, 36)
OPTIONS = (
    Option("Root", str, "/advanced-rest", "prefix of the plugin's own routes", "Configuration", "root"),
    Option("ServeCoreRoutes", bool, True, "also answer the core's routes (`/tools/create-dicom`), so existing "
           "clients get the plugin", "Configuration", "serve_core_routes"),
    Option("StrictDicom", bool, False, "create-dicom makes conformant IODs by default", "Configuration",
           "strict_dicom"),
    Option("ConcurrentJobs", int, 2, "workers of the plugin's jobs engine (0: one per core)", "Configuration",
           "concurrent_jobs", minimum=0, orthanc="ConcurrentJobs"),
    Option("JobsHistorySize", int, 10, "finished plugin jobs kept", "Configuration", "jobs_history_size",
           minimum=0, orthanc="JobsHistorySize"),
    Option("SaveJobs", bool, True, "keep the plugin's jobs across restarts", "Configuration", "save_jobs",
           orthanc="SaveJobs"),
    Option("LoopbackUser", str, "", "the RegisteredUsers entry whose rights the plugin's own background work has "
           "(reading the core's jobs for the feed, metrics and webhooks); empty: no credentials", "Configuration",
           "loopback_user"),
    Option("TrustedOrigins", list, [], "origins (`https://viewer.example.org`) whose cross-site requests may still "
           "change something (POST, PUT, DELETE) through the plugin's routes; a browser's other cross-site requests "
           "are refused (403)", "Configuration"),
    Option("CreatorMetadata", str, "", "name of a user-defined metadata where create-dicom records who asked",
           "Configuration", "creator_metadata"),
    Option("MaxRequestBytes", int, 256 * MIB, "a create-dicom body larger than this is refused (413), before "
           "parsing", "Limits", "max_request_bytes", minimum=1),
    Option("MaxImageBytes", int, 256 * MIB, "an image whose width x height x bytes per pixel, read from its "
           "header, is larger is refused (400)", "Limits", "max_image_bytes", minimum=1),
    Option("MaxImagePixels", int, 178956970, "an image of more pixels is refused (400); Pillow's own default guard",
           "Limits", "max_image_pixels", minimum=1),
    Option("MaxInstancesPerRequest", int, 1000, "a Content array of more items is refused (400)", "Limits",
           "max_instances_per_request", minimum=1),
    Option("MaxSequenceDepth", int, 16, "sequences nested deeper in Tags are refused (400)", "Limits",
           "max_sequence_depth", minimum=1, maximum=32,
           why="Orthanc 1.10's DICOM parser crashes on files nested about 45 levels deep"),
    Option("MaxElements", int, 10000, "more tags in one request are refused (400)", "Limits", "max_elements",
           minimum=1),
    Option("MaxPendingJobs", int, 100, "an asynchronous create-dicom (or a resubmission) while that many plugin "
           "jobs are unfinished (pending, paused, running) is refused (503, Retry-After)", "Limits",
           "max_pending_jobs", minimum=1),
    Option("MaxPendingBytes", int, 1024 * MIB, "an asynchronous create-dicom whose body would take the bodies that "
           "unfinished plugin jobs hold over this is refused (503, Retry-After); a body larger than this alone: 413",
           "Limits", "max_pending_bytes", minimum=1),
    Option("MaxOutputBytes", int, 256 * MIB, "an output of a core job served under {Root} larger than this is "
           "redirected (301) to the core's own path instead of copied", "Limits", "max_output_bytes", minimum=1),
    Option("MaxConcurrentOutputs", int, 2, "outputs of core jobs served under {Root} at once; one more waits 2 s, "
           "then 503 (Retry-After)", "Limits", "max_concurrent_outputs", minimum=1, maximum=1000),
    Option("MaxWaitSeconds", float, 60.0, "longest wait of /jobs/{id}/wait and /jobs/changes", "Limits",
           "max_wait_seconds", above=0, maximum=3600),
    Option("LongPollShare", float, 0.2, "share of Orthanc's HttpThreadsCount that waits may hold", "Limits",
           above=0, below=1),
    Option("LoopbackStoreShare", float, 0.25, "share of Orthanc's HttpThreadsCount that synchronous create-dicom "
           "requests may hold storing through Orthanc's HTTP server, where calls into Orthanc keep the GIL (Python "
           "plugin before 4.3); beyond it, and with 0, they store through the SDK", "Limits", minimum=0, below=1),
    Option("MaxPendingDeliveries", int, 1000, "a job event while that many webhook deliveries wait is not queued "
           "(logged and counted in orthanc_advanced_rest_webhook_events_refused_total)", "Limits",
           "max_pending_deliveries", minimum=1, maximum=1000000),
    Option("KeptDeliveries", int, 1000, "finished webhook deliveries (delivered or failed) kept for "
           "`GET {Root}/webhooks/deliveries`", "Configuration", "kept_deliveries", minimum=0, maximum=1000000),
    Option("Webhooks.Url", str, "", "where events are POSTed (http or https; required)", "Webhooks"),
    Option("Webhooks.Name", str, "", "the endpoint's name in answers, deliveries, metrics and logs (default: "
           "the URL's scheme, host and port, e.g. https://hooks.example.org:443; two endpoints without a Name "
           "on the same host and port are refused)", "Webhooks"),
    Option("Webhooks.Events", list, ["JobSuccess", "JobFailure"], "events sent: JobSubmitted, JobRunning, JobPaused, "
           "JobRetry, JobSuccess, JobFailure, JobDeleted", "Webhooks"),
    Option("Webhooks.Types", list, [], "job types sent, core and plugin (empty: all)", "Webhooks"),
    Option("Webhooks.Secret", str, "", "Standard Webhooks secret (`whsec_` + base64); empty: unsigned", "Webhooks"),
    Option("Webhooks.TimeoutSeconds", float, 10.0, "connecting, and each read of the answer", "Webhooks",
           above=0, maximum=300),
    Option("Webhooks.MaxAttempts", int, 20, "attempts before a delivery is marked failed", "Webhooks",
           minimum=1, maximum=1000),
    Option("Webhooks.MaxAgeHours", float, 24.0, "a delivery still undelivered this long after its event is "
           "marked failed", "Webhooks", above=0, maximum=24 * 365),
    Option("Webhooks.BackoffSeconds", float, 2.0, "wait before the first retry; doubled at each retry, with "
           "jitter", "Webhooks", above=0, maximum=3600),
    Option("Webhooks.MaxBackoffSeconds", float, 3600.0, "longest wait between two attempts", "Webhooks",
           above=0, maximum=86400),
    Option("Retries.Types", list, [], "job types it retries, the core's (DicomModalityStore, OrthancPeerStore...); "
           "required", "Retries"),
    Option("Retries.ErrorCodes", list, list(DEFAULT_RETRIED_CODES), "Orthanc error codes retried (the default: "
           "network errors, timeouts, the database unavailable); never a bad request", "Retries"),
    Option("Retries.MaxAttempts", int, 5, "runs of a job, the first included, before it fails for good", "Retries",
           minimum=1, maximum=1000),
    Option("Retries.MaxAgeHours", float, 24.0, "a job that first failed this long ago fails for good", "Retries",
           above=0, maximum=24 * 365),
    Option("Retries.BackoffSeconds", float, 30.0, "wait before the first retry; doubled at each retry, with jitter",
           "Retries", above=0, maximum=86400),
    Option("Retries.MaxBackoffSeconds", float, 3600.0, "longest wait between two runs", "Retries", above=0,
           maximum=7 * 86400),
    Option("MaxRetryingJobs", int, 1000, "a failed job under a policy while that many are under retry fails for good "
           "(logged, and counted in orthanc_advanced_rest_retries_total{outcome=\"refused\"})", "Limits",
           "max_retrying_jobs", minimum=1, maximum=1000000),
    Option("Cluster.Enabled", bool, False, "share the plugin's jobs through PostgreSQL", "Cluster",
           orthanc="PostgreSQL.EnableIndex"),
    Option("Cluster.LeaseSeconds", float, 30.0, "a replica silent this long is considered dead", "Cluster",
           "lease_seconds", minimum=1, maximum=3600),
)
OPTION = {option.name: option for option in OPTIONS}
MAX_SEQUENCE_DEPTH_CAP = OPTION["MaxSequenceDepth"].maximum
LONG_POLL_SHARE = OPTION["LongPollShare"].default  # of Orthanc's HttpThreadsCount: waits hold at most this share
LOOPBACK_STORE_SHARE = OPTION["LoopbackStoreShare"].default


def _default(name):
    return OPTION[name].default


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated plugin settings; build with `from_configuration` or directly in tests."""

    root: str = _default("Root")
    serve_core_routes: bool = _default("ServeCoreRoutes")
    strict_dicom: bool = _default("StrictDicom")
    max_image_pixels: int = _default("MaxImagePixels")
    default_private_creator: str = ""
    dictionary: dict = dataclasses.field(default_factory=dict)
    concurrent_jobs: int = _default("ConcurrentJobs")
    jobs_history_size: int = _default("JobsHistorySize")
    save_jobs: bool = _default("SaveJobs")
    # Limits (each refusal names its option; README "Limits").
    max_request_bytes: int = _default("MaxRequestBytes")
    max_image_bytes: int = _default("MaxImageBytes")
    max_instances_per_request: int = _default("MaxInstancesPerRequest")
    max_sequence_depth: int = _default("MaxSequenceDepth")
    max_elements: int = _default("MaxElements")
    max_pending_jobs: int = _default("MaxPendingJobs")
    max_pending_bytes: int = _default("MaxPendingBytes")
    max_wait_seconds: float = _default("MaxWaitSeconds")
    max_waiting_requests: int = max(1, int(ORTHANC_HTTP_THREADS * LONG_POLL_SHARE))  # long-polls held at once
    # create-dicom stores through Orthanc's HTTP server at once (where the SDK keeps the GIL); 0: never.
    loopback_stores: int = max(1, int(ORTHANC_HTTP_THREADS * LOOPBACK_STORE_SHARE))
    creator_metadata: str = _default("CreatorMetadata")
    trusted_origins: tuple = ()  # scheme://host[:port], lower case (web.cross_site)
    # The user names Orthanc's HTTP server authenticates (RegisteredUsers) when its authentication is in
    # force, else none: a Basic header names a user only then (CreatorMetadata).
    authenticated_users: frozenset = frozenset()
    # Orthanc's IngestTranscoding is set: it may store another transfer syntax than create-dicom wrote (its
    # instances are then counted in orthanc_instances_received_total by reading them back, as any other).
    ingest_transcoding: bool = False
    loopback_user: str = _default("LoopbackUser")
    max_output_bytes: int = _default("MaxOutputBytes")
    max_concurrent_outputs: int = _default("MaxConcurrentOutputs")
    # The cluster: on when Orthanc's index is in PostgreSQL (AdvancedRest.Cluster.Enabled decides).
    cluster: bool = False
    lease_seconds: float = _default("Cluster.LeaseSeconds")
    replica: str = ""  # Orthanc's DatabaseServerIdentifier
    postgresql: dict = dataclasses.field(default_factory=dict)  # Orthanc's PostgreSQL section
    # Webhooks: the endpoints (AdvancedRest.Webhooks), the outbox's bound and its kept history.
    webhooks: tuple = ()
    max_pending_deliveries: int = _default("MaxPendingDeliveries")
    kept_deliveries: int = _default("KeptDeliveries")
    # Automatic retries: the policies (AdvancedRest.Retries) and how many jobs may wait in Retry.
    retries: tuple = ()
    max_retrying_jobs: int = _default("MaxRetryingJobs")


WEBHOOK_EVENTS = ("JobSubmitted", "JobRunning", "JobPaused", "JobRetry", "JobSuccess", "JobFailure", "JobDeleted")


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """One policy of AdvancedRest.Retries: which failed jobs run again, how often, how long after."""

    types: tuple
    error_codes: tuple = DEFAULT_RETRIED_CODES
    max_attempts: int = 5
    max_age_hours: float = 24.0
    backoff_seconds: float = 30.0
    max_backoff_seconds: float = 3600.0

    def retries(self, job_type, error_code):
        """Whether a job of `job_type` that failed with `error_code` is this policy's to run again."""
        return job_type in self.types and error_code in self.error_codes


@dataclasses.dataclass(frozen=True)
class Webhook:
    """One endpoint of AdvancedRest.Webhooks (from the configuration only: no request adds one)."""

    url: str = dataclasses.field(repr=False)  # its path, query or credentials may be a secret: never printed
    name: str
    events: tuple = ("JobSuccess", "JobFailure")
    types: tuple = ()  # empty: every job type
    secret: str = dataclasses.field(default="", repr=False)  # never printed
    timeout_seconds: float = 10.0
    max_attempts: int = 20
    max_age_hours: float = 24.0
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 3600.0
    # 0.1.0's default name of an endpoint without a Name (its URL but credentials and query, so maybe a
    # secret path): the deliveries kept under it are renamed to `name` at start. Never printed either.
    former_name: str = dataclasses.field(default="", repr=False)

    def wants(self, event, job_type):
        """Whether this endpoint is sent `event` of a job of `job_type`."""
        return event in self.events and (not self.types or job_type in self.types)


class SettingsError(ValueError):
    """One or more bad values in the configuration, all named in the message."""


def _read(problems, section, option, default=None):
    """The value of `option` in `section` (its default when absent or bad, the problem then noted)."""
    fallback = option.default if default is None else default
    key = option.name.rsplit(".", 1)[-1]
    if key not in section:
        return fallback
    problem = option.check(section[key])
    if problem:
        problems.append("AdvancedRest.%s %s" % (option.name, problem))
        return fallback
    return section[key]


def _unknown(problems, section, prefix):
    """Note every key of `section` that no option under `prefix` declares."""
    known = sorted(name[len(prefix):] for name in OPTION if name.startswith(prefix) and "." not in name[len(prefix):])
    if prefix == "":
        known = sorted(known + ["Cluster", "Retries", "Webhooks"])
    for key in sorted(set(section) - set(known)):
        problems.append("AdvancedRest.%s%s is not a known option (known: %s)" % (prefix, key, ", ".join(known)))


def from_configuration(config):
    """Settings from Orthanc's whole configuration dict.

    Raises:
        SettingsError: naming every bad value and its path.
    """
    problems = []
    section = config.get("AdvancedRest", {})
    if not isinstance(section, dict):
        raise SettingsError("AdvancedRest must be a JSON object, not %r" % (section,))
    _unknown(problems, section, "")

    values = {}
    for option in OPTIONS:
        if option.attribute is None or "." in option.name:
            continue  # derived below, or inside the Cluster object
        default = None
        if option.orthanc is not None:  # the engine's options default to Orthanc's own of the same names
            own = config.get(option.orthanc)
            default = own if own is not None and option.check(own) is None else None
        values[option.attribute] = _read(problems, section, option, default)

    root = values["root"]
    if root != Settings.root:
        root = root.rstrip("/") if len(root) > 1 else root
        if not _ROOT_PATTERN.match(root):
            problems.append("AdvancedRest.Root must look like /name or /a/b, not %r" % root)
    values["root"] = root
    if values["concurrent_jobs"] == 0:
        values["concurrent_jobs"] = os.cpu_count() or 1  # as Orthanc: 0 means one per core
    values["max_wait_seconds"] = float(values["max_wait_seconds"])
    share = _read(problems, section, OPTION["LongPollShare"])
    http_threads = _orthanc_int(config, "HttpThreadsCount", ORTHANC_HTTP_THREADS)
    values["max_waiting_requests"] = max(1, int(http_threads * share))
    share = _read(problems, section, OPTION["LoopbackStoreShare"])
    values["loopback_stores"] = max(1, int(http_threads * share)) if share > 0 else 0
    cluster = _cluster(problems, config, section)
    values["webhooks"] = _webhooks(problems, section)
    values["retries"] = _retries(problems, section)
    values["authenticated_users"] = authenticated_users(config)
    values["ingest_transcoding"] = bool(config.get("IngestTranscoding"))
    values["trusted_origins"] = _origins(problems, _read(problems, section, OPTION["TrustedOrigins"]))

    users = config.get("RegisteredUsers")
    if values["loopback_user"] and not (isinstance(users, dict) and values["loopback_user"] in users):
        problems.append("AdvancedRest.LoopbackUser %r is not one of RegisteredUsers" % values["loopback_user"])

    creator = config.get("DefaultPrivateCreator", "")
    if not isinstance(creator, str):
        problems.append("DefaultPrivateCreator must be a string, not %r" % (creator,))
    dictionary = config.get("Dictionary", {})
    if not isinstance(dictionary, dict):
        problems.append("Dictionary must be a JSON object, not %r" % (dictionary,))

    if problems:
        raise SettingsError("; ".join(problems))
    return Settings(default_private_creator=creator, dictionary=dictionary, **cluster, **values)


_ORIGIN = re.compile(r"^https?://[^/?#@\s]+$")


def _origins(problems, origins):
    """AdvancedRest.TrustedOrigins as lower-case `scheme://host[:port]`, each checked."""
    for origin in origins:
        if not _ORIGIN.match(origin):
            problems.append("AdvancedRest.TrustedOrigins: %r is not an origin (scheme://host[:port], no path)" % origin)
    return tuple(origin.lower() for origin in origins if _ORIGIN.match(origin))


def postgresql_index_loaded(config, listdir=os.listdir, isdir=os.path.isdir):
    """Whether Orthanc loads a PostgreSQL index plugin: one of its `Plugins` entries (a library, or a
    folder of libraries) is one. A `PostgreSQL` section alone (shared configuration files have one)
    does not put Orthanc's index in PostgreSQL."""
    entries = config.get("Plugins", [])
    entries = [entries] if isinstance(entries, str) else entries if isinstance(entries, list) else []
    names = []
    for entry in entries:
        if not isinstance(entry, str):
            continue
        try:
            names.extend(listdir(entry) if isdir(entry) else [os.path.basename(entry)])
        except OSError:
            continue
    return any(re.search(r"postgresql", name, re.I) and not re.search(r"storage", name, re.I)
               and re.search(r"\.(so|dll|dylib)(\.|$)", name) for name in names)


def _cluster(problems, config, section):
    """The cluster's settings: on by default when Orthanc's index is in PostgreSQL (its section
    enables the index and its plugin is loaded)."""
    postgresql = config.get("PostgreSQL", {})
    postgresql = postgresql if isinstance(postgresql, dict) else {}
    in_postgresql = bool(postgresql.get("EnableIndex", False)) and postgresql_index_loaded(config)
    options = section.get("Cluster", {})
    if not isinstance(options, dict):
        problems.append("AdvancedRest.Cluster must be a JSON object, not %r" % (options,))
        return {}
    _unknown(problems, options, "Cluster.")
    enabled = _read(problems, options, OPTION["Cluster.Enabled"], in_postgresql)
    lease = _read(problems, options, OPTION["Cluster.LeaseSeconds"])
    if not enabled:
        return {}
    if not in_postgresql:
        problems.append("AdvancedRest.Cluster.Enabled needs Orthanc's index in PostgreSQL "
                        "(PostgreSQL.EnableIndex, and the PostgreSQL index plugin among Orthanc's Plugins)")
        return {}
    replica = config.get("DatabaseServerIdentifier")
    if not isinstance(replica, str) or not replica.strip():
        problems.append("The cluster needs each replica's DatabaseServerIdentifier set explicitly in Orthanc's "
                        "configuration (or AdvancedRest.Cluster.Enabled false)")
        return {}
    return {"cluster": True, "lease_seconds": float(lease), "replica": replica.strip(), "postgresql": postgresql}


def authenticated_users(config):
    """The user names Orthanc's HTTP server checks the password of, from Orthanc's own options; empty when
    its authentication is off (a Basic header then names nobody: anyone may write it)."""
    remote = config.get("RemoteAccessAllowed", False) is True
    enabled = config.get("AuthenticationEnabled")
    if not isinstance(enabled, bool):
        enabled = remote  # Orthanc >= 1.5.8: absent, authentication is on exactly when remote access is allowed
    if not enabled:
        return frozenset()
    users = config.get("RegisteredUsers")
    names = frozenset(users) if isinstance(users, dict) else frozenset()
    # With no user declared and remote access allowed, Orthanc 1.5.8 to 1.12.8 registers "orthanc" itself
    # (later versions do so only when RegisteredUsers is absent, or refuse to start): a name the core may
    # authenticate. Naming one the core does not know gives nothing: it refuses that password first.
    return names or (frozenset({"orthanc"}) if remote else frozenset())


_DEFAULT_PORTS = {"http": 80, "https": 443}


def url_origin(url):
    """`url`'s scheme, host and port (the port always: the scheme's default when the URL has none), all
    that names, answers, metrics and logs show of an endpoint: its path, query, fragment or credentials
    may hold a secret (a token).

    Raises:
        ValueError: the URL's port is not a number from 0 to 65535.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = "[%s]" % host  # an IPv6 address
    port = parts.port
    return "%s://%s:%d" % (parts.scheme, host, _DEFAULT_PORTS.get(parts.scheme, 0) if port is None else port)


def _former_default_name(url):
    """The name 0.1.0 gave an endpoint without a Name: its URL without credentials, query or fragment."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    host = "[%s]" % host if ":" in host else host
    return "%s://%s%s%s" % (parts.scheme, host, ":%d" % parts.port if parts.port else "", parts.path)


def _items(problems, section, name, noun, secret=None):
    """(index, its path, its values with the defaults, whether they are all good) of each object of the list AdvancedRest.`name` (the
    options `name`.X declare its keys), its bad keys and values noted in `problems` (the value of `secret`, a
    key, is never told). `noun`: what an item is, for the message of a list that is not one."""
    items = section.get(name, [])
    if not isinstance(items, list):
        problems.append("AdvancedRest.%s must be a list of %s, not %r" % (name, noun, type(items).__name__))
        return
    fields = {key.split(".", 1)[1]: option for key, option in OPTION.items() if key.startswith(name + ".")}
    for index, item in enumerate(items):
        where = "AdvancedRest.%s[%d]" % (name, index)
        if not isinstance(item, dict):
            problems.append("%s must be a JSON object" % where)
            continue
        before = len(problems)
        for key in sorted(set(item) - set(fields)):
            problems.append("%s.%s is not a known option (known: %s)" % (where, key, ", ".join(sorted(fields))))
        values = {}
        for key, option in fields.items():
            value = item.get(key, option.default)
            problem = option.check(value) if key in item else None
            if problem:
                problems.append("%s.%s %s" % (where, key, problem.replace(repr(value), "given") if key == secret
                                                else problem))
            values[key] = value
        yield index, where, values, len(problems) == before


def _webhooks(problems, section):
    """The endpoints of AdvancedRest.Webhooks, each checked (names unique)."""
    found, names = [], {}  # name -> index of its endpoint
    for index, where, values, good in _items(problems, section, "Webhooks", "endpoints", secret="Secret"):
        before = len(problems)
        url = values["Url"]
        try:
            origin = url_origin(url) if isinstance(url, str) else None
        except ValueError:  # a port that is not a number (the URL itself is never told: it may hold a secret)
            origin = None
        parts = urllib.parse.urlsplit(url) if origin else None
        if not origin or parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append("%s.Url must be an http:// or https:// URL (with a valid port, if any)" % where)
        unknown = [event for event in values["Events"] if event not in WEBHOOK_EVENTS] \
            if isinstance(values["Events"], list) else []
        if unknown:
            problems.append("%s.Events: unknown event(s) %s (known: %s)" % (where, ", ".join(unknown),
                                                                           ", ".join(WEBHOOK_EVENTS)))
        if values["Secret"] and isinstance(values["Secret"], str) and not _secret_is_valid(values["Secret"]):
            problems.append("%s.Secret must be base64, optionally after whsec_ (a Standard Webhooks secret)" % where)
        if not good or len(problems) > before:  # one with any problem is left out
            continue
        name = values["Name"] or origin
        if name in names:
            # Two unnamed endpoints of one host and port (paths apart) are refused rather than numbered: a
            # number would follow their order, and reordering them would send kept deliveries to the other.
            if values["Name"]:
                problems.append("%s.Name %r is already AdvancedRest.Webhooks[%d]'s (give each a Name)"
                                % (where, name, names[name]))
            else:
                problems.append("%s has no Name, and its default name %r (its URL's scheme, host and port) is "
                                "already AdvancedRest.Webhooks[%d]'s (give each a Name)" % (where, name, names[name]))
            continue
        names[name] = index
        former = "" if values["Name"] else _former_default_name(url)
        found.append(Webhook(url=url, name=name, former_name=former if former != name else "",
                             events=tuple(values["Events"]), types=tuple(values["Types"]),
                             secret=values["Secret"], timeout_seconds=float(values["TimeoutSeconds"]),
                             max_attempts=values["MaxAttempts"], max_age_hours=float(values["MaxAgeHours"]),
                             backoff_seconds=float(values["BackoffSeconds"]),
                             max_backoff_seconds=float(values["MaxBackoffSeconds"])))
    return tuple(found)


def _retries(problems, section):
    """The policies of AdvancedRest.Retries, each checked; a job type in two policies is refused (which would
    decide would depend on their order)."""
    found, owner = [], {}  # job type -> index of its policy
    for index, where, values, good in _items(problems, section, "Retries", "policies"):
        before = len(problems)
        if isinstance(values["Types"], list) and not values["Types"]:
            problems.append("%s.Types must name at least one job type" % where)
        for job_type in values["Types"] if isinstance(values["Types"], list) else []:
            if job_type in owner:
                problems.append("%s.Types: %s is already AdvancedRest.Retries[%d]'s" % (where, job_type, owner[job_type]))
            owner.setdefault(job_type, index)
        if not good or len(problems) > before:  # one with any problem is left out
            continue
        found.append(RetryPolicy(types=tuple(values["Types"]), error_codes=tuple(values["ErrorCodes"]),
                                 max_attempts=values["MaxAttempts"], max_age_hours=float(values["MaxAgeHours"]),
                                 backoff_seconds=float(values["BackoffSeconds"]),
                                 max_backoff_seconds=float(values["MaxBackoffSeconds"])))
    return tuple(found)


def _secret_is_valid(secret):
    text = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    try:
        return len(base64.b64decode(text + "==", validate=False)) > 0 and \
            re.fullmatch(r"[A-Za-z0-9+/]+=*", text) is not None
    except ValueError:
        return False


def _orthanc_int(config, key, default):
    value = config.get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default
