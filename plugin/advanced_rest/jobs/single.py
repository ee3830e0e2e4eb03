"""The plugin's jobs on one server: their store (local.LocalStore: memory under one lock), its workers
(workers.WorkerPool) and, when they are saved (AdvancedRest.SaveJobs), what keeps them in Orthanc's global
properties (store.Store); the cluster's counterpart is cluster.replica.Cluster. Built once by the wiring
(app.py), its parts given what they need in their constructors."""
import logging

from .local import LocalStore
from .store import Store
from .workers import WorkerPool

logger = logging.getLogger(__name__)


class SingleServer:
    """One server's jobs: `jobs` (interfaces.Jobs), every change of a job recorded in `feed` (in the order it
    happened, the jobs' lock held) and saved within a second; a submission or an action saved before it is
    answered.

    `properties`: (get_property, set_property) of Orthanc's global properties, or None not to save;
    `durable_first()`: what must be durable before each save of the jobs (the webhooks' outbox: a job's
    events no later than its change); `runner_for(type, payload, record)` re-creates a saved job's runner.
    """

    def __init__(self, feed, runner_for, concurrent_jobs=2, history_size=10, max_pending=None,
                 max_pending_bytes=None, properties=None, durable_first=None):
        self._feed, self._runner_for = feed, runner_for
        self._store = None  # set below, before any job exists to change
        self._jobs = LocalStore(history_size, on_change=self._changed, persist=self._persist,
                                max_pending=max_pending, max_pending_bytes=max_pending_bytes)
        self._workers = WorkerPool(self._jobs, concurrent_jobs)
        if properties is not None:
            self._store = Store(self._jobs, properties[0], properties[1], durable_first=durable_first)

    @property
    def jobs(self):
        return self._jobs

    @property
    def loaded(self):
        return self._jobs.loaded

    def start(self, reload=True):
        """Load what was saved (unless `reload` is false: Orthanc's --no-jobs), then save and run."""
        if self._store is not None:
            if reload:
                self._store.load(self._runner_for)
            else:
                logger.warning("--no-jobs: the plugin's saved jobs are not reloaded")
            self._store.start()
        self._jobs.mark_loaded()
        self._workers.start()

    def stop(self):
        """Running jobs go back to Pending after their step, and are saved so."""
        self._workers.stop()
        if self._store is not None:
            self._store.stop()

    def _changed(self, job):
        self._feed.record(job, "plugin")
        if self._store is not None:
            self._store.changed()

    def _persist(self):
        if self._store is not None:
            self._store.save()
