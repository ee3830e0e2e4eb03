"""The `AdvancedRest` section of Orthanc's configuration, read once into frozen settings."""
import dataclasses
import logging
import os
import re

logger = logging.getLogger(__name__)

MAX_SEQUENCE_DEPTH_CAP = 32  # Orthanc 1.10.1 dies storing files nested about 45 levels deep
LONG_POLL_SHARE = 0.2  # of Orthanc's HttpThreadsCount: waits never hold more HTTP threads than this
_ROOT_PATTERN = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Validated plugin settings; build with `from_configuration` or directly in tests."""

    root: str = "/advanced-rest"
    serve_core_routes: bool = True
    strict_dicom: bool = False
    max_image_pixels: int = 178956970  # Pillow's own default guard
    default_private_creator: str = ""
    dictionary: dict = dataclasses.field(default_factory=dict)
    concurrent_jobs: int = 2
    jobs_history_size: int = 10
    save_jobs: bool = True
    # Limits (each refusal names its option; README "Limits").
    max_request_bytes: int = 256 * 1024 * 1024  # create-dicom body
    max_image_bytes: int = 256 * 1024 * 1024  # decoded bytes of one image (width x height x bytes per pixel)
    max_instances_per_request: int = 1000  # items of a Content array
    max_sequence_depth: int = 16  # nested sequence levels in Tags (Orthanc 1.10 crashes from about 45)
    max_elements: int = 10000  # elements of one request's Tags, nested ones included
    max_pending_jobs: int = 100  # plugin jobs waiting for a worker; beyond: 503 with Retry-After
    max_wait_seconds: float = 60.0  # longest wait of /jobs/{id}/wait and /jobs/changes
    max_waiting_requests: int = 10  # long-polls held at once; default: LongPollShare of HttpThreadsCount
    creator_metadata: str = ""  # user-defined metadata recording who created an instance ("" = none)
    # The cluster: on when Orthanc's index is in PostgreSQL (AdvancedRest.Cluster.Enabled decides).
    cluster: bool = False
    lease_seconds: float = 30.0
    replica: str = ""  # Orthanc's DatabaseServerIdentifier
    postgresql: dict = dataclasses.field(default_factory=dict)  # Orthanc's PostgreSQL section


class SettingsError(ValueError):
    """One or more bad values in the configuration, all named in the message."""


def _expect(problems, section, key, kind, default):
    if key not in section:
        return default
    value = section[key]
    # bool is an int in Python: keep integers strict.
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        problems.append("AdvancedRest.%s must be an integer, not %r" % (key, value))
        return default
    if kind is not int and not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else "number"
        problems.append("AdvancedRest.%s must be a %s, not %r" % (key, name, value))
        return default
    return value


def from_configuration(config):
    """Settings from Orthanc's whole configuration dict.

    Raises:
        SettingsError: naming every bad value and its path.
    """
    problems = []
    section = config.get("AdvancedRest", {})
    if not isinstance(section, dict):
        raise SettingsError("AdvancedRest must be a JSON object, not %r" % (section,))
    known = {"Root", "ServeCoreRoutes", "StrictDicom", "MaxImagePixels", "ConcurrentJobs", "JobsHistorySize",
             "SaveJobs", "MaxRequestBytes", "MaxImageBytes", "MaxInstancesPerRequest", "MaxSequenceDepth",
             "MaxElements", "MaxPendingJobs", "MaxWaitSeconds", "LongPollShare", "CreatorMetadata", "Cluster"}
    for key in sorted(set(section) - known):
        problems.append("AdvancedRest.%s is not a known option (known: %s)" % (key, ", ".join(sorted(known))))

    root = _expect(problems, section, "Root", str, Settings.root)
    if root != Settings.root:
        root = root.rstrip("/") if len(root) > 1 else root
        if not _ROOT_PATTERN.match(root):
            problems.append("AdvancedRest.Root must look like /name or /a/b, not %r" % root)
    serve_core_routes = _expect(problems, section, "ServeCoreRoutes", bool, True)
    strict_dicom = _expect(problems, section, "StrictDicom", bool, False)
    max_pixels = _expect(problems, section, "MaxImagePixels", int, Settings.max_image_pixels)
    if max_pixels <= 0:
        problems.append("AdvancedRest.MaxImagePixels must be positive, not %r" % max_pixels)

    # The engine's options default to Orthanc's own options of the same names.
    concurrent = _expect(problems, section, "ConcurrentJobs", int, _orthanc_int(config, "ConcurrentJobs", 2))
    history = _expect(problems, section, "JobsHistorySize", int, _orthanc_int(config, "JobsHistorySize", 10))
    save_default = config.get("SaveJobs", True)
    save_jobs = _expect(problems, section, "SaveJobs", bool, save_default if isinstance(save_default, bool) else True)
    if concurrent < 0 or history < 0:
        problems.append("AdvancedRest.ConcurrentJobs and JobsHistorySize cannot be negative")
    if concurrent == 0:
        concurrent = os.cpu_count() or 1  # as Orthanc: 0 means one per core

    limits = {}
    for key, attribute in (("MaxRequestBytes", "max_request_bytes"), ("MaxImageBytes", "max_image_bytes"),
                           ("MaxInstancesPerRequest", "max_instances_per_request"),
                           ("MaxSequenceDepth", "max_sequence_depth"), ("MaxElements", "max_elements"),
                           ("MaxPendingJobs", "max_pending_jobs")):
        value = _expect(problems, section, key, int, getattr(Settings, attribute))
        if value <= 0:
            problems.append("AdvancedRest.%s must be positive, not %r" % (key, value))
        limits[attribute] = value
    if limits["max_sequence_depth"] > MAX_SEQUENCE_DEPTH_CAP:
        problems.append("AdvancedRest.MaxSequenceDepth cannot exceed %d: Orthanc 1.10's DICOM parser crashes on "
                        "deeper files" % MAX_SEQUENCE_DEPTH_CAP)
    max_wait = _expect(problems, section, "MaxWaitSeconds", (int, float), Settings.max_wait_seconds)
    if isinstance(max_wait, bool) or not 0 < max_wait <= 3600:
        problems.append("AdvancedRest.MaxWaitSeconds must be a number of seconds in (0, 3600], not %r" % (max_wait,))
    share = _expect(problems, section, "LongPollShare", (int, float), LONG_POLL_SHARE)
    if isinstance(share, bool) or not 0 < share < 1:
        problems.append("AdvancedRest.LongPollShare must be a fraction between 0 and 1, not %r" % (share,))
        share = LONG_POLL_SHARE
    http_threads = _orthanc_int(config, "HttpThreadsCount", 50)
    limits["max_waiting_requests"] = max(1, int(http_threads * share))
    creator_metadata = _expect(problems, section, "CreatorMetadata", str, "")
    cluster = _cluster(problems, config, section)

    creator = config.get("DefaultPrivateCreator", "")
    if not isinstance(creator, str):
        problems.append("DefaultPrivateCreator must be a string, not %r" % (creator,))
    dictionary = config.get("Dictionary", {})
    if not isinstance(dictionary, dict):
        problems.append("Dictionary must be a JSON object, not %r" % (dictionary,))

    if problems:
        raise SettingsError("; ".join(problems))
    return Settings(
        root=root,
        serve_core_routes=serve_core_routes,
        strict_dicom=strict_dicom,
        max_image_pixels=max_pixels,
        default_private_creator=creator,
        dictionary=dictionary,
        concurrent_jobs=concurrent,
        jobs_history_size=history,
        save_jobs=save_jobs,
        max_wait_seconds=float(max_wait) if not problems else Settings.max_wait_seconds,
        creator_metadata=creator_metadata,
        **cluster,
        **limits,
    )


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
    for key in sorted(set(options) - {"Enabled", "LeaseSeconds"}):
        problems.append("AdvancedRest.Cluster.%s is not a known option (known: Enabled, LeaseSeconds)" % key)
    enabled = options.get("Enabled", in_postgresql)
    lease = options.get("LeaseSeconds", Settings.lease_seconds)
    if not isinstance(enabled, bool):
        problems.append("AdvancedRest.Cluster.Enabled must be a bool, not %r" % (enabled,))
        enabled = False
    if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not 1 <= lease <= 3600:
        problems.append("AdvancedRest.Cluster.LeaseSeconds must be a number of seconds in [1, 3600], not %r"
                        % (lease,))
        lease = Settings.lease_seconds
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
