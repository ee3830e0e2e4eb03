"""Wiring: configuration -> settings -> routes, with host.py's calls handed to each feature."""
import logging
import re
import sys

from . import __version__, host, openapi, settings as settings_
from .dicomize.dictionary import Dictionary
from .dicomize.job import JOB_TYPE
from .dicomize.routes import CreateDicom, Services
from .jobs.changes import ChangeFeed, CoreWatcher
from .jobs.engine import Engine, Restored
from .jobs.model import FINISHED
from .jobs.routes import Core, JobsApi, WaitLimits
from .jobs.store import Store
from .metrics.families import Metrics
from .metrics.received import ReceivedCounter
from .metrics.push import Pusher, headline
from .metrics.routes import MetricsApi
from .web import Router, Transport, json_response

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


class _Background:
    """The plugin's threads: started with Orthanc (ORTHANC_STARTED), stopped with it.

    Work starts at ORTHANC_STARTED since the database is not open while plugins initialise.
    """

    def __init__(self, engine, store, watcher, pusher, runner_for, received):
        self.engine, self.store, self.watcher, self.pusher = engine, store, watcher, pusher
        self.received = received
        self._runner_for = runner_for

    def started(self, _):
        if self.store is not None:
            if "--no-jobs" in host.command_line_arguments():
                logger.warning("--no-jobs: the plugin's saved jobs are not reloaded")
            else:
                self.store.load(self._runner_for)
            self.store.start()
        self.engine.start()
        self.watcher.start()
        self.pusher.start()
        self.received.start()

    def stopped(self, _):
        self.received.stop()
        self.pusher.stop()
        self.watcher.stop()
        self.engine.stop()  # running jobs go back to Pending, and are saved so
        if self.store is not None:
            self.store.stop()


def _read_settings():
    try:
        settings = settings_.from_configuration(host.configuration())
        return settings, Dictionary(settings.dictionary)
    except Exception as exc:  # a bad configuration must not take Orthanc down
        logger.error("NOT SERVING ANYTHING: bad configuration: %s", exc)
        return None, None


def register():
    """Serve every feature the configuration enables."""
    host.install_logging()
    settings, dictionary = _read_settings()
    if settings is None:
        return
    metrics = Metrics(host.MetricsSwitch())
    feed = ChangeFeed(listeners=[lambda job: metrics.job_finished(job) if job.get("State") in FINISHED else None])
    store = None

    def job_changed(job):
        feed.record(job, "plugin")
        if store is not None:
            store.changed()

    def persist():
        if store is not None:
            store.save()

    engine = Engine(settings.concurrent_jobs, settings.jobs_history_size, on_change=job_changed, persist=persist,
                    max_pending=settings.max_pending_jobs)
    if settings.save_jobs:
        store = Store(engine, host.get_global_property, host.set_global_property)
    watcher = CoreWatcher(feed, host.rest_get)
    metrics.add_job_source(engine.all)
    metrics.add_job_source(watcher.jobs)

    services = Services(host.rest_get_json, host.rest_post, host.rest_delete, _default_encoding, host.rest_put)
    create_dicom = CreateDicom(settings, dictionary, services, engine, observe=metrics.create_dicom)
    jobs = JobsApi(engine, Core(host.rest_get, host.rest_post, host.rest_delete), feed,
                   WaitLimits(settings.max_wait_seconds, settings.max_waiting_requests))
    metrics_api = MetricsApi(metrics, lambda: host.rest_get("/tools/metrics-prometheus"), lambda: headline(engine.all))

    router = Router(Transport(host.answer, host.send_status, host.method_not_allowed, host.register_route),
                    observe=metrics.request)
    own = re.escape(settings.root)
    router.add(own + "/system", {"GET": _system})
    router.add(own + "/metrics", {"GET": metrics_api.own})
    for root in [own] + ([""] if settings.serve_core_routes else []):
        router.add(root + "/tools/create-dicom", {"POST": create_dicom})
        for suffix, handlers in jobs.routes(own=root == own):
            router.add(root + suffix, handlers)
    if settings.serve_core_routes:
        router.add("/tools/metrics-prometheus", {"GET": metrics_api.core})
    try:
        description = json_response(openapi.document(router.registered + [(own + "/openapi.json", ["GET"])],
                                                     settings.root))
        router.add(own + "/openapi.json", {"GET": lambda request: description})
    except KeyError as missing:  # a route without its description: everything else still serves
        logger.error("No OpenAPI description for %s: not serving openapi.json", missing)

    received = ReceivedCounter(metrics, host.rest_get_json)
    background = _Background(engine, store, watcher, Pusher(lambda: headline(engine.all), host.set_metric,
                                                             metrics.enabled), _runner_for(create_dicom), received)
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
