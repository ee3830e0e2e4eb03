"""Wiring: configuration -> settings -> routes, with host.py's calls handed to each feature."""
import logging
import re
import sys

from . import __version__, host, settings as settings_
from .dicomize.dictionary import Dictionary
from .dicomize.routes import CreateDicom, Services
from .dicomize.job import JOB_TYPE
from .jobs.engine import Engine, Restored
from .jobs.model import FINISHED
from .jobs.store import Store
from .metrics.families import Metrics, modality_of
from .metrics.push import Pusher, headline
from .metrics.routes import MetricsApi
from .jobs.changes import ChangeFeed, CoreWatcher
from .jobs.routes import Core, JobsApi
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


def register():
    """Serve every feature the configuration enables."""
    host.install_logging()
    try:
        settings = settings_.from_configuration(host.configuration())
        dictionary = Dictionary(settings.dictionary)
    except Exception as exc:  # a bad configuration must not take Orthanc down
        logger.error("NOT SERVING ANYTHING: bad configuration: %s", exc)
        return
    metrics = Metrics(host.MetricsSwitch())
    router = Router(Transport(host.answer, host.send_status, host.method_not_allowed, host.register_route),
                    observe=metrics.request)
    feed = ChangeFeed(listeners=[lambda job: metrics.job_finished(job) if job.get("State") in FINISHED else None])
    store = None

    def job_changed(job):
        feed.record(job, "plugin")
        if store is not None:
            store.changed()

    engine = Engine(settings.concurrent_jobs, settings.jobs_history_size, on_change=job_changed)
    if settings.save_jobs:
        store = Store(engine, host.get_global_property, host.set_global_property)
    watcher = CoreWatcher(feed, host.rest_get)
    services = Services(host.rest_get_json, host.rest_post, host.rest_delete, _default_encoding)
    create_dicom = CreateDicom(settings, dictionary, services, engine, observe=metrics.create_dicom)
    metrics.add_job_source(engine.all)
    metrics.add_job_source(watcher.jobs)
    pusher = Pusher(lambda: headline(engine.all), host.set_metric, metrics.enabled)
    metrics_api = MetricsApi(metrics, lambda: host.rest_get("/tools/metrics-prometheus"))
    jobs = JobsApi(engine, Core(host.rest_get, host.rest_post, host.rest_delete), feed)

    roots = [re.escape(settings.root)] + ([""] if settings.serve_core_routes else [])
    router.add(roots[0] + "/system", {"GET": _system})
    router.add(roots[0] + "/metrics", {"GET": metrics_api.own})
    if settings.serve_core_routes:
        router.add("/tools/metrics-prometheus", {"GET": metrics_api.core})
    host.on_stored_instance(lambda origin, syntax, data: metrics.instance_received(
        origin, modality_of(data), syntax))
    for root in roots:
        router.add(root + "/tools/create-dicom", {"POST": create_dicom})
        for suffix, handlers in jobs.routes(own=root == roots[0]):
            router.add(root + suffix, handlers)

    # Work starts at ORTHANC_STARTED: the database is not open while plugins initialise.
    def started(_):
        if store is not None:
            if "--no-jobs" in host.command_line_arguments():
                logger.warning("--no-jobs: the plugin's saved jobs are not reloaded")
            else:
                store.load(_runner_for(create_dicom))
            store.start()
        engine.start()
        watcher.start()
        pusher.start()

    def stopped(_):
        pusher.stop()
        watcher.stop()
        engine.stop()
        if store is not None:
            store.stop()

    host.register_on_change({
        "ORTHANC_STARTED": started,
        "ORTHANC_STOPPED": stopped,
        "JOB_SUBMITTED": watcher.changed,
        "JOB_SUCCESS": watcher.changed,
        "JOB_FAILURE": watcher.changed,
    })
    logger.warning("advanced-rest %s serving under %s (core routes: %s)",
                   __version__, settings.root, "on" if settings.serve_core_routes else "off")
