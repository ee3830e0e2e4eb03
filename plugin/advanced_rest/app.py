"""Wiring: configuration -> settings -> routes, with host.py's calls handed to each feature."""
import dataclasses
import json
import logging
import random
import sys
import time

from . import __version__, access as access_, host, memory, routes, settings as settings_
from .create_dicom.job import JOB_TYPE
from .create_dicom.route import CreateDicom, Services
from .create_dicom.storing import HttpStore
from .dicomize.dictionary import Dictionary
from .jobs.changes import ChangeFeed, CoreWatcher
from .jobs.core import CoreJobs, loopback_permits
from .jobs.workers import Restored
from .jobs.model import FINISHED
from .jobs.routes import Core, JobsApi, OutputLimits, WaitLimits
from .jobs.single import SingleServer
from .metrics.families import Metrics, tally
from .metrics.received import ReceivedCounter
from .metrics.push import Pusher, headline
from .metrics.routes import MetricsApi
from .retries.core_jobs import CoreRetries
from .ui.routes import JobsPage
from .web import Router, Transport, json_response
from .webhooks.dispatch import Dispatcher, Saver
from .webhooks.outbox import Outbox
from .webhooks.routes import WebhooksApi

logger = logging.getLogger(__name__)


def _default_encoding():
    return host.rest_get("/tools/default-encoding").decode("utf-8").strip()


def _system(request):
    return json_response({
        "Name": "advanced-rest",
        "Version": __version__,
        "Python": "%d.%d.%d" % sys.version_info[:3],
        "PythonPlugin": host.python_plugin_version(),
    })


def _runner_for(create_dicom):
    """Re-creates the runner of a saved job (a stand-in when it cannot run again)."""
    def runner_for(job_type, payload, record):
        if payload is not None and job_type == JOB_TYPE:
            try:
                return create_dicom.runner_from(payload)
            except Exception:
                logger.exception("Cannot restore job %s", record.get("ID"))
        return Restored(record.get("Content"))
    return runner_for


def _check_database(clustered):
    """Say once if the database Orthanc actually uses (known only once it started) contradicts the
    choice made from its configuration at load time."""
    try:
        backend = host.rest_get_json("/system").get("DatabaseBackendPlugin")
    except Exception as error:  # an old core without the field: nothing to compare
        logger.info("Orthanc's database backend could not be read (%s)", type(error).__name__)
        return
    in_postgresql = isinstance(backend, str) and "postgresql" in backend.lower()
    if clustered and not in_postgresql:
        logger.error("The cluster is on, but Orthanc's index is not in PostgreSQL (DatabaseBackendPlugin: %s): "
                     "set AdvancedRest.Cluster.Enabled to false", backend)
    elif not clustered and in_postgresql:
        logger.warning("Orthanc's index is in PostgreSQL (%s) but its plugin was not recognised among Orthanc's "
                       "Plugins: the plugin's jobs stay on this server (AdvancedRest.Cluster.Enabled: true "
                       "shares them)", backend)


class _Background:
    """The plugin's threads: started with Orthanc (ORTHANC_STARTED), stopped with it.

    Work starts at ORTHANC_STARTED since the database is not open while plugins initialise.
    """

    def __init__(self, mode, watcher, pusher, received, http_store=None, retries=None):
        self.mode, self.watcher, self.pusher, self.received = mode, watcher, pusher, received
        self.http_store = http_store  # create-dicom's store through Orthanc's HTTP server (None: never)
        self.retries = retries  # retries.core_jobs.CoreRetries, or None (no policy)

    def started(self, _):
        host.test_references()  # before the rest: until it decides, requests are served as the Python plugin does alone
        if self.http_store is not None:  # before the plugin's threads start, which would take the GIL meanwhile
            _decide_store(self.http_store)
        _check_database(self.mode.clustered)
        if self.retries is not None:  # its table back before any request or look shows a core job
            self.retries.load()
        self.mode.start()  # from here requests are answered (they waited for the saved jobs)
        if self.retries is not None:
            self.retries.start()
        self.watcher.start()
        self.pusher.start()
        self.received.start()

    def stopped(self, _):
        self.received.stop()
        self.pusher.stop()
        self.watcher.stop()
        if self.retries is not None:
            self.retries.stop()
        self.mode.stop()


STORE_TIMEOUT = 60.0  # seconds a store through Orthanc's HTTP server may take (a 256 MiB file's included)


def _http_store(settings):
    """create-dicom's store through Orthanc's own HTTP server as each requester (storing.HttpStore), off until
    the GIL's self-test; None with AdvancedRest.LoopbackStoreShare 0 or Orthanc's HTTP server off."""
    if settings.loopback_stores == 0:
        return None
    loopback = host.Loopback(host.configuration(), timeout=STORE_TIMEOUT)
    if not loopback.enabled:
        return None
    return HttpStore(loopback.request, access_.identity, settings.loopback_stores)


def _decide_store(http_store):
    """Store through Orthanc's HTTP server only where calls into Orthanc keep the GIL (host.sdk_keeps_gil)."""
    keeps = host.sdk_keeps_gil()
    http_store.active = keeps is True
    if keeps:
        logger.warning("Self-test of the GIL: calls into Orthanc keep it (Python plugin before 4.3, or "
                       "Python.AllowThreads off): synchronous create-dicom stores through Orthanc's HTTP server as "
                       "the requester, up to %d at once (AdvancedRest.LoopbackStoreShare), else through the SDK",
                       http_store.permits)
    else:
        logger.warning("Self-test of the GIL: calls into Orthanc %s: create-dicom stores through the SDK",
                       "release it" if keeps is False else "undecided")


POOL_WAIT = 2.0  # seconds a request waits for a connection to the cluster's PostgreSQL before its 503


@dataclasses.dataclass(frozen=True)
class _Mode:
    """The plugin's jobs in the one mode the configuration chose (one server, or the cluster), as the rest of
    the wiring uses them; built whole by `_one_server` or `_cluster`."""

    jobs: object  # interfaces.Jobs: the routes' and create-dicom's
    feed: object  # interfaces.Feed: the numbered change feed
    counted: object  # () -> Counter {(type, state): count}: the plugin's jobs in the gauges
    loaded: object  # (timeout) -> whether the saved jobs are back
    webhooks: object  # WebhooksApi
    start: object  # () -> None, at ORTHANC_STARTED: the jobs (saved ones loaded), their outbox and its senders
    stop: object  # () -> None, at ORTHANC_STOPPED
    clustered: bool = False
    peers: object = None  # cluster.peers.CorePeers: the core jobs of every replica (cluster only)


def _on_finished(metrics):
    def finished(job):
        if job.get("State") in FINISHED:
            metrics.job_finished(job)
    return finished


def _refused(settings, metrics):
    """What the webhooks' senders report of events a full outbox refused."""
    def refused(counts):
        for (endpoint, event), count in sorted(counts.items()):
            metrics.webhook_refused(endpoint, count)
            logger.warning("Webhook %s: the outbox is full (AdvancedRest.MaxPendingDeliveries = %d): %d %s "
                           "event(s) not queued", endpoint, settings.max_pending_deliveries, count, event)
    return refused


def _memory_outbox(settings, metrics):
    """One server's outbox (also the cluster's when no endpoint is configured: nothing to share)."""
    outbox = Outbox(settings.webhooks, settings.max_pending_deliveries, settings.kept_deliveries, time.time,
                    random.random)
    metrics.add_webhooks(outbox.depth, lambda: True, time.time)
    return outbox


def _one_server(settings, metrics, runner_for):
    """The jobs in this server's memory, saved in its global properties, with their webhooks' outbox saved
    there too: a job's events durable before its change is (jobs/store.py)."""
    endpoints = settings.webhooks
    outbox = _memory_outbox(settings, metrics)
    saver = Saver(outbox, host.get_global_property, host.set_global_property) if endpoints else None
    dispatcher = Dispatcher(outbox, endpoints, observe=metrics.webhook_attempted,
                            refused=_refused(settings, metrics)) if endpoints else None
    feed = ChangeFeed(listeners=[_on_finished(metrics)], in_order=outbox.job_changed if endpoints else None)
    single = SingleServer(feed, runner_for, settings.concurrent_jobs, settings.jobs_history_size,
                          settings.max_pending_jobs, settings.max_pending_bytes,
                          properties=(host.get_global_property, host.set_global_property) if settings.save_jobs
                          else None,
                          durable_first=saver.save if saver is not None else None)

    def start():
        if saver is not None:  # first: what was pending goes out again, before what comes now
            saver.load()
            saver.start()
        single.start(reload="--no-jobs" not in host.command_line_arguments())
        if dispatcher is not None:
            dispatcher.start()

    def stop():
        single.stop()  # running jobs go back to Pending, and are saved so
        if dispatcher is not None:
            dispatcher.stop()
        if saver is not None:
            saver.stop()

    return _Mode(single.jobs, feed, lambda: tally(single.jobs.all()), single.loaded,
                 WebhooksApi(outbox) if endpoints else WebhooksApi(outbox, settings.replica or None), start, stop)


def _cluster(settings, metrics, runner_for):
    """The jobs in Orthanc's own PostgreSQL, shared by every replica (its schema made, this replica's identity
    checked), with their webhooks' outbox in the same database: a move and its events in one transaction.

    Raises:
        IdentityInUse, psycopg errors: it cannot start.
    """
    import psycopg
    import psycopg_pool
    from .jobs.cluster import database, replica
    from .webhooks.cluster import ClusterOutbox

    options = database.conninfo(settings.postgresql)
    uri = options.pop("conninfo", "")
    options["options"] = database.session_options(settings.lease_seconds)
    name = database.application_name(settings.replica)
    pool = psycopg_pool.ConnectionPool(uri, kwargs=dict(options, autocommit=True, application_name=name),
                                       min_size=1, max_size=8, timeout=POOL_WAIT, open=True,
                                       name="advanced-rest-cluster")

    def connect(application_name):
        return psycopg.connect(uri, **dict(options, autocommit=True, application_name=application_name))

    def core_action(job_id, action):
        if action == "delete":
            host.rest_delete("/jobs/%s" % job_id)
        else:
            host.rest_post("/jobs/%s/%s" % (job_id, action), b"")

    db = database.Database(pool, connect, settings.replica, settings.lease_seconds)
    endpoints = settings.webhooks
    outbox, in_move = None, None
    if endpoints:
        outbox = ClusterOutbox(db, endpoints, settings.max_pending_deliveries, settings.kept_deliveries,
                               settings.lease_seconds)

        def in_move(conn, job, seq):
            try:
                with conn.transaction():  # a savepoint: a fault of the webhooks' own does not stop the job's move
                    outbox.job_changed(conn, job, seq, settings.replica)
            except psycopg.OperationalError:
                raise  # a lock busy, the database gone: the whole move is tried again (Cluster.moving), or fails
            except Exception:
                logger.exception("Webhooks: the events of a move of job %s could not be queued", job.get("ID"))

    cluster = replica.Cluster(db, runner_for, core_action, settings.concurrent_jobs, settings.jobs_history_size,
                              settings.max_pending_jobs, settings.max_pending_bytes, on_change=_on_finished(metrics),
                              in_move=in_move)
    try:
        cluster.open()
        if outbox is not None:
            with cluster.transaction() as conn:
                outbox.create(conn)
    except Exception:
        pool.close()
        raise
    logger.warning("Cluster mode: replica %s, jobs shared through PostgreSQL (lease %g s)",
                   settings.replica, settings.lease_seconds)
    metrics.add_cluster(cluster.counters)
    if outbox is None:
        webhooks, dispatcher = WebhooksApi(_memory_outbox(settings, metrics), settings.replica or None), None
    else:
        metrics.add_webhooks(outbox.depth, cluster.reporting, time.time)  # counted once, as orthanc_jobs
        webhooks = WebhooksApi(outbox, settings.replica)
        dispatcher = Dispatcher(outbox, endpoints, observe=metrics.webhook_attempted, look=outbox.look,
                                refused=_refused(settings, metrics))

    def start():
        cluster.migrate(host.get_global_property, host.set_global_property)
        cluster.start()
        if dispatcher is not None:
            dispatcher.start()

    def stop():
        if dispatcher is not None:
            dispatcher.stop()
        cluster.stop()  # what this replica held is free for the others

    # The gauges: the cluster's, from the one replica that holds the reporting role now.
    return _Mode(cluster, cluster.feed, cluster.gauges, cluster.loaded, webhooks, start, stop, clustered=True,
                 peers=cluster.peers)


def _read_settings():
    try:
        settings = settings_.from_configuration(host.configuration())
        return settings, Dictionary(settings.dictionary)
    except Exception as exc:  # a bad configuration must not take Orthanc down
        logger.error("NOT SERVING ANYTHING: bad configuration: %s", exc)
        return None, None


def _loopback(settings):
    """(CoreJobs, Access or None): the core's jobs, ids through the SDK and each job's JSON through Orthanc's own
    HTTP server (jobs/core.py says why) as AdvancedRest.LoopbackUser; and the site's rules asked there as each
    requester (access.py), None when Orthanc's HTTP server is off (no request comes but through the SDK). A
    quarter of HttpThreadsCount reads core jobs at once, another asks the site's rules."""
    config = host.configuration()
    threads = config.get("HttpThreadsCount", 50)
    threads = threads if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0 else 50
    loopback = host.Loopback(config, settings.loopback_user)
    if not loopback.enabled:
        logger.warning("Orthanc's HTTP server is off: the core's jobs are left out of the plugin's lists, feed, "
                       "metrics and webhooks")
    elif not settings.loopback_user and config.get("AuthenticationEnabled") is not False \
            and config.get("RegisteredUsers"):
        logger.warning("AdvancedRest.LoopbackUser is not set: the plugin's background work reads the core's jobs "
                       "without credentials (the site's rules may refuse it: then they are left out of the feed, "
                       "metrics and webhooks)")
    core_jobs = CoreJobs(lambda: host.rest_get("/jobs"), loopback.get, loopback_permits(threads))
    access = access_.Access(loopback.request, access_.new_token(), access_.permits_for(threads)) \
        if loopback.enabled else None
    return core_jobs, access


def _retries(settings, metrics):
    """The core's failed jobs run again under AdvancedRest.Retries (one server), or None (no policy; a cluster:
    not yet, said in one line)."""
    if not settings.retries:
        return None
    if settings.cluster:
        logger.error("AdvancedRest.Retries is not available in a cluster yet: no job is retried (one server only)")
        return None

    def resubmit(job_id):
        host.rest_post("/jobs/%s/resubmit" % job_id, b"")
    metrics.add_retries()
    return CoreRetries(settings.retries, host.get_global_property, host.set_global_property, resubmit,
                       lambda: json.loads(host.rest_get("/jobs")), settings.max_retrying_jobs, count=metrics.retried)


def register():
    """Serve every feature the configuration enables."""
    host.install_logging()
    settings, dictionary = _read_settings()
    if settings is None:
        return
    metrics = Metrics(host.MetricsSwitch())
    http_store = _http_store(settings)
    received = ReceivedCounter(metrics, host.rest_get_json)  # told by create-dicom of what it stores
    services = Services(host.rest_get_json, host.rest_post, host.rest_delete, _default_encoding, host.rest_put,
                        http_store, received)
    # A saved job's runner is re-made from its request alone: by a create-dicom that submits nothing.
    runner_for = _runner_for(CreateDicom(settings, dictionary, services))
    try:
        mode = (_cluster if settings.cluster else _one_server)(settings, metrics, runner_for)
    except Exception as exc:  # one line, and Orthanc's own API keeps working
        logger.error("NOT SERVING ANYTHING: the %s cannot start: %s",
                     "cluster" if settings.cluster else "plugin's jobs", exc)
        return
    core_jobs, access = _loopback(settings)
    retries = _retries(settings, metrics)
    if retries is not None:  # every core job the plugin shows (lists, wait, feed, webhooks, metrics) as it retries it
        core_jobs = retries.view(core_jobs)
        metrics.add_retry_source(retries.gauges)
    watcher = CoreWatcher(mode.feed, lambda: core_jobs.all(in_request=False),
                          mode.peers.publish_core if mode.peers is not None else None, ids=core_jobs.ids)
    metrics.add_job_source(mode.counted)
    metrics.add_job_source(lambda: tally(watcher.jobs()))

    create_dicom = CreateDicom(settings, dictionary, services, mode.jobs, observe=metrics.create_dicom)
    jobs = JobsApi(mode.jobs, Core(host.rest_get, host.rest_post, host.rest_delete), core_jobs, mode.feed,
                   WaitLimits(settings.max_wait_seconds, settings.max_waiting_requests), peers=mode.peers,
                   loaded=mode.loaded, access=access, retries=retries,
                   outputs=OutputLimits(settings.max_output_bytes, settings.max_concurrent_outputs))
    metrics_api = MetricsApi(metrics, lambda: host.rest_get("/tools/metrics-prometheus"),
                             lambda: headline(mode.counted))

    router = Router(Transport(host.answer, host.send_status, host.method_not_allowed, host.register_route,
                              host.redirect),
                    observe=metrics.request, after_large=memory.give_back, large=memory.LARGE_REQUEST,
                    is_gate=access.is_gate if access is not None else None, trusted_origins=settings.trusted_origins)
    host.register_reference_test(settings.root)  # its probe route, run at ORTHANC_STARTED
    routes.serve(router, settings, create_dicom, jobs, metrics_api, _system, mode.webhooks, access,
                 JobsPage(settings.root))

    background = _Background(mode, watcher, Pusher(lambda: headline(mode.counted), host.set_metric, metrics.enabled),
                             received, http_store, retries)
    host.register_on_change({
        "ORTHANC_STARTED": background.started,
        "ORTHANC_STOPPED": background.stopped,
        "JOB_SUBMITTED": watcher.changed,
        "JOB_SUCCESS": watcher.changed,
        "JOB_FAILURE": watcher.changed,
        "NEW_INSTANCE": received.new_instance,
    })
    logger.warning("advanced-rest %s serving under %s (core routes: %s)",
                   __version__, settings.root, "on" if settings.serve_core_routes else "off")
