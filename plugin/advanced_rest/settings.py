"""The `AdvancedRest` section of Orthanc's configuration, read once into frozen settings."""
import dataclasses
import logging
import os
import re

logger = logging.getLogger(__name__)

ORTHANC_HTTP_THREADS = 50  # Orthanc's default HttpThreadsCount
_ROOT_PATTERN = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")
_KINDS = {bool: "a Boolean", int: "an integer", float: "a number", str: "a string"}


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
    Option("MaxPendingJobs", int, 100, "an asynchronous create-dicom while that many plugin jobs wait is refused "
           "(503, Retry-After)", "Limits", "max_pending_jobs", minimum=1),
    Option("MaxWaitSeconds", float, 60.0, "longest wait of /jobs/{id}/wait and /jobs/changes", "Limits",
           "max_wait_seconds", above=0, maximum=3600),
    Option("LongPollShare", float, 0.2, "share of Orthanc's HttpThreadsCount that waits may hold", "Limits",
           above=0, below=1),
    Option("Cluster.Enabled", bool, False, "share the plugin's jobs through PostgreSQL", "Cluster",
           orthanc="PostgreSQL.EnableIndex"),
    Option("Cluster.LeaseSeconds", float, 30.0, "a replica silent this long is considered dead", "Cluster",
           "lease_seconds", minimum=1, maximum=3600),
)
OPTION = {option.name: option for option in OPTIONS}
MAX_SEQUENCE_DEPTH_CAP = OPTION["MaxSequenceDepth"].maximum
LONG_POLL_SHARE = OPTION["LongPollShare"].default  # of Orthanc's HttpThreadsCount: waits hold at most this share


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
    max_wait_seconds: float = _default("MaxWaitSeconds")
    max_waiting_requests: int = max(1, int(ORTHANC_HTTP_THREADS * LONG_POLL_SHARE))  # long-polls held at once
    creator_metadata: str = _default("CreatorMetadata")
    # The cluster: on when Orthanc's index is in PostgreSQL (AdvancedRest.Cluster.Enabled decides).
    cluster: bool = False
    lease_seconds: float = _default("Cluster.LeaseSeconds")
    replica: str = ""  # Orthanc's DatabaseServerIdentifier
    postgresql: dict = dataclasses.field(default_factory=dict)  # Orthanc's PostgreSQL section


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
        known = sorted(known + ["Cluster"])
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
    cluster = _cluster(problems, config, section)

    creator = config.get("DefaultPrivateCreator", "")
    if not isinstance(creator, str):
        problems.append("DefaultPrivateCreator must be a string, not %r" % (creator,))
    dictionary = config.get("Dictionary", {})
    if not isinstance(dictionary, dict):
        problems.append("Dictionary must be a JSON object, not %r" % (dictionary,))

    if problems:
        raise SettingsError("; ".join(problems))
    return Settings(default_private_creator=creator, dictionary=dictionary, **cluster, **values)


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


def _orthanc_int(config, key, default):
    value = config.get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default
