"""One server's jobs for unit tests: the real store (jobs/local.py) and its real workers (jobs/workers.py), composed
as jobs/single.py composes them, without Orthanc's global properties (the tests that save use store.Store)."""
from advanced_rest.jobs.local import LocalStore
from advanced_rest.jobs.workers import WorkerPool


class LocalJobs(LocalStore):
    """A LocalStore with `concurrent_jobs` workers, started and stopped with it; not started, its jobs stay where
    they are (Pending)."""

    def __init__(self, concurrent_jobs=1, history_size=10, **options):
        super().__init__(history_size, **options)
        self.workers = WorkerPool(self, concurrent_jobs)

    def start(self):
        self.mark_loaded()
        self.workers.start()

    def stop(self, timeout=30.0):
        self.workers.stop(timeout)
