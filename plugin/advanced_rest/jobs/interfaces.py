"""What the routes, create-dicom and the workers rely on. One server (local.LocalStore, changes.ChangeFeed) and
the cluster (cluster.replica.Cluster, cluster.feed.ClusterFeed) are two implementations of the same things;
tests/unit/test_jobs_interfaces.py holds both to these signatures, and tests/integration/test_jobs_contract.py
to the same behaviour."""
from typing import Optional, Protocol, runtime_checkable


@runtime_checkable
class Jobs(Protocol):
    """The plugin's jobs, as the routes and create-dicom see them."""

    def submit(self, job_type, runner, priority=0, job_id=None) -> str:
        """Queue a job, durable before this returns; its id. Raises QueueFull."""

    def get(self, job_id) -> Optional[dict]:
        """A job's JSON (the core's shape), or None."""

    def ids(self) -> list:
        """Every job id, in submission order."""

    def all(self) -> list:
        """Every job's JSON, in submission order."""

    def wait(self, job_id, timeout) -> dict:
        """The job's JSON once finished, or after `timeout` s. Raises UnknownJob."""

    def act(self, job_id, action) -> None:
        """cancel, pause, resume or resubmit, durable before it returns. Raises UnknownJob, IllegalTransition."""

    def delete(self, job_id) -> None:
        """Forget a finished job. Raises UnknownJob, IllegalTransition."""


@runtime_checkable
class Feed(Protocol):
    """The numbered change feed ({Root}/jobs/changes) and what writes the core's jobs into it."""

    def record(self, job, origin) -> None:
        """A job's JSON; recorded when its state or progress moved."""

    def forget(self, job_id) -> None:
        """A job left the history: stop remembering what was last recorded of it."""

    def last(self) -> int:
        """The newest change's number."""

    def wait_after(self, seq, timeout) -> int:
        """Wait up to `timeout` s for a change numbered above `seq`; the newest number."""

    def since(self, since, timeout, limit=1000) -> dict:
        """{"Changes", "Last", "Done"} after `since`, waiting up to `timeout` s for one."""


@runtime_checkable
class JobStore(Protocol):
    """What a worker (workers.WorkerPool) needs of the store of its jobs: a claim, and each move it makes
    decided and written there (jobs/decisions.py, a compare-and-set on the job's version and the claim's
    token). The pool keeps nothing else."""

    def claim(self, stopping) -> Optional[object]:
        """A model.Claim of the first job free to run (or to be undone), waiting for one; None once `stopping`
        (a threading.Event) is set."""

    def move(self, claim, move, report=None) -> Optional[object]:
        """Decide and write a worker's model.Move with its model.Report: a model.Verdict (the row's pause and
        cancel requests; applied False when a cancel refused it), or None when `claim` is no longer the job's."""

    def wake(self) -> None:
        """Wake the workers waiting in `claim` (their pool stops)."""
